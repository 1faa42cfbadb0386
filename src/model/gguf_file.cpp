#include "model/gguf_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "model/gguf_check.h"
#include "model/mapped_file.h"
#include "util/error.h"

namespace colony {

std::unique_ptr<GgufFile> GgufFile::open(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw Error(ErrorCode::kNotFound, "model file " + path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        throw Error(ErrorCode::kNotFound, path + " is not a regular file");
    check_gguf_file(path);  // before ggml's reader sees a byte (gguf_check.h)
    return read_checked(path, static_cast<uint64_t>(st.st_size));
}

std::unique_ptr<GgufFile> GgufFile::open_header(const std::string &path, uint64_t file_size) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        throw Error(ErrorCode::kNotFound, "GGUF header " + path + ": " + std::strerror(errno));
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size == 0 || size > file_size)
        throw Error(ErrorCode::kCorrupt, path + ": " + std::to_string(size) +
                                             " header bytes for a file of " +
                                             std::to_string(file_size));
    const MappedRange map(path, 0, size, /*populate=*/false);
    check_gguf_header(std::span<const uint8_t>(map.data(), size), file_size, path);
    return read_checked(path, file_size);
}

std::unique_ptr<GgufFile> GgufFile::read_checked(const std::string &path, uint64_t file_size) {
    auto file = std::make_unique<GgufFile>();
    file->path_ = path;
    file->file_size_ = file_size;
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/&file->meta_ctx_};
    file->gguf_ = gguf_init_from_file(path.c_str(), params);
    if (!file->gguf_) {
        throw Error(ErrorCode::kCorrupt,
                    path + ": malformed or truncated GGUF header (gguf reader rejected it)");
    }
    const uint64_t data_offset = gguf_get_data_offset(file->gguf_);
    const int64_t n = gguf_get_n_tensors(file->gguf_);
    file->tensors_.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        GgufTensor t;
        t.name = gguf_get_tensor_name(file->gguf_, i);
        t.meta = ggml_get_tensor(file->meta_ctx_, t.name.c_str());
        if (!t.meta)
            throw Error(ErrorCode::kCorrupt, path + ": tensor table inconsistent");
        t.offset = data_offset + gguf_get_tensor_offset(file->gguf_, i);
        t.nbytes = ggml_nbytes(t.meta);
        // overflow-safe: offset + nbytes must not wrap and must lie in the file
        if (t.offset < data_offset || t.offset + t.nbytes < t.offset ||
            t.offset + t.nbytes > file->file_size_) {
            throw Error(
                ErrorCode::kCorrupt,
                path + ": tensor '" + t.name +
                    "' data is not within the file bounds; the file is truncated or corrupt");
        }
        file->by_name_.emplace(t.name, file->tensors_.size());
        file->tensors_.push_back(std::move(t));
    }
    return file;
}

GgufFile::~GgufFile() {
    if (gguf_)
        gguf_free(gguf_);
    if (meta_ctx_)
        ggml_free(meta_ctx_);
}

const GgufTensor *GgufFile::find(const std::string &name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

bool GgufFile::has_key(const std::string &key) const {
    return gguf_find_key(gguf_, key.c_str()) >= 0;
}

std::optional<std::string> GgufFile::get_string(const std::string &key) const {
    const int64_t id = gguf_find_key(gguf_, key.c_str());
    if (id < 0 || gguf_get_kv_type(gguf_, id) != GGUF_TYPE_STRING)
        return std::nullopt;
    return std::string(gguf_get_val_str(gguf_, id));
}

std::optional<int64_t> GgufFile::get_int(const std::string &key) const {
    const int64_t id = gguf_find_key(gguf_, key.c_str());
    if (id < 0)
        return std::nullopt;
    switch (gguf_get_kv_type(gguf_, id)) {
        case GGUF_TYPE_UINT8:
            return gguf_get_val_u8(gguf_, id);
        case GGUF_TYPE_INT8:
            return gguf_get_val_i8(gguf_, id);
        case GGUF_TYPE_UINT16:
            return gguf_get_val_u16(gguf_, id);
        case GGUF_TYPE_INT16:
            return gguf_get_val_i16(gguf_, id);
        case GGUF_TYPE_UINT32:
            return gguf_get_val_u32(gguf_, id);
        case GGUF_TYPE_INT32:
            return gguf_get_val_i32(gguf_, id);
        case GGUF_TYPE_UINT64:
            return static_cast<int64_t>(gguf_get_val_u64(gguf_, id));
        case GGUF_TYPE_INT64:
            return gguf_get_val_i64(gguf_, id);
        default:
            return std::nullopt;
    }
}

std::optional<double> GgufFile::get_float(const std::string &key) const {
    const int64_t id = gguf_find_key(gguf_, key.c_str());
    if (id < 0)
        return std::nullopt;
    switch (gguf_get_kv_type(gguf_, id)) {
        case GGUF_TYPE_FLOAT32:
            return gguf_get_val_f32(gguf_, id);
        case GGUF_TYPE_FLOAT64:
            return gguf_get_val_f64(gguf_, id);
        default: {
            auto i = get_int(key);
            if (i)
                return static_cast<double>(*i);
            return std::nullopt;
        }
    }
}

std::optional<bool> GgufFile::get_bool(const std::string &key) const {
    const int64_t id = gguf_find_key(gguf_, key.c_str());
    if (id < 0 || gguf_get_kv_type(gguf_, id) != GGUF_TYPE_BOOL)
        return std::nullopt;
    return gguf_get_val_bool(gguf_, id);
}

std::optional<size_t> GgufFile::get_array_size(const std::string &key) const {
    const int64_t id = gguf_find_key(gguf_, key.c_str());
    if (id < 0 || gguf_get_kv_type(gguf_, id) != GGUF_TYPE_ARRAY)
        return std::nullopt;
    return gguf_get_arr_n(gguf_, id);
}

std::string GgufFile::require_string(const std::string &key) const {
    auto v = get_string(key);
    if (!v)
        throw Error(ErrorCode::kCorrupt, path_ + ": missing string key '" + key + "'");
    return *v;
}

int64_t GgufFile::require_int(const std::string &key) const {
    auto v = get_int(key);
    if (!v)
        throw Error(ErrorCode::kCorrupt, path_ + ": missing integer key '" + key + "'");
    return *v;
}

}  // namespace colony
