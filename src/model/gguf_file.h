// A GGUF file opened for reading: its metadata (key/values), the tensor table,
// and bounds-checked access to tensor bytes.
//
// Format: GGUF v3 (ggml/docs/gguf.md in the pinned llama.cpp tree); parsing is
// done by ggml's gguf reader (ggml/src/gguf.cpp) after colony's own structural
// check (gguf_check.h) has passed, so a malformed or hostile file is one clear
// error, and a truncated download is reported at open time, not as a crash later.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace colony {

/// One tensor of the file: `meta` carries type and shape (ne[0] innermost);
/// `offset` is absolute in the file, `nbytes` = ggml_nbytes(meta).
struct GgufTensor {
    std::string name;
    ggml_tensor *meta = nullptr;
    uint64_t offset = 0;
    uint64_t nbytes = 0;
};

class GgufFile {
  public:
    /// Opens and validates `path` (check_gguf_file, then ggml's reader).
    /// Errors: kNotFound (missing/unreadable), kCorrupt (what check_gguf
    /// names: bad magic, malformed header, tensor data outside the file, an
    /// inconsistent tokenizer).
    static std::unique_ptr<GgufFile> open(const std::string &path);
    /// Opens `path` holding only the first bytes of a GGUF file of
    /// `file_size` bytes (its header, fetched by a Range request): metadata
    /// and the tensor table, with offsets and bounds as in the whole file;
    /// tensor bytes are not there to read. Errors as open(), and kCorrupt when
    /// the header does not end inside `path`.
    static std::unique_ptr<GgufFile> open_header(const std::string &path, uint64_t file_size);
    ~GgufFile();

    const std::string &path() const { return path_; }
    uint64_t file_size() const { return file_size_; }
    const gguf_context *gguf() const { return gguf_; }

    /// nullptr when the file has no tensor of that name.
    const GgufTensor *find(const std::string &name) const;
    const std::vector<GgufTensor> &tensors() const { return tensors_; }

    bool has_key(const std::string &key) const;
    /// Typed getters; the `required` forms throw kCorrupt naming the key when it
    /// is missing or has another type. Integer getters accept any integer type.
    std::optional<std::string> get_string(const std::string &key) const;
    std::optional<int64_t> get_int(const std::string &key) const;
    std::optional<double> get_float(const std::string &key) const;
    std::optional<bool> get_bool(const std::string &key) const;
    /// Number of elements of an array key, if present.
    std::optional<size_t> get_array_size(const std::string &key) const;
    std::string require_string(const std::string &key) const;
    int64_t require_int(const std::string &key) const;

    GgufFile() = default;  // use open()
    GgufFile(const GgufFile &) = delete;
    GgufFile &operator=(const GgufFile &) = delete;

  private:
    /// ggml's reader over a file check_gguf has passed.
    static std::unique_ptr<GgufFile> read_checked(const std::string &path, uint64_t file_size);

    std::string path_;
    uint64_t file_size_ = 0;
    gguf_context *gguf_ = nullptr;
    ggml_context *meta_ctx_ = nullptr;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace colony
