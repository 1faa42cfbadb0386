// GGUF shards: a GGUF holding only the tensors one stage needs, so a worker
// never receives or stores the whole model (DESIGN.md, decision 7).
//
// A shard for layers [first, last) of a model with n_layer blocks keeps all of
// the model's metadata (so hyper-parameters and tokenizer are unchanged), the
// tensors blk.first .. blk.(last-1), token_embd.weight when first == 0, and
// output_norm.weight + output.weight when last == n_layer (for a tied model the
// head is written as output.weight, copied from token_embd.weight). It adds:
//   colony.shard.first  u32, colony.shard.last u32
//   colony.shard.model_sha256  string (hex, the whole model's file hash)
// Tensor names are the model's, so StageWeights loads a shard like the model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/layer_range.h"

namespace colony {

class GgufFile;
struct ModelHparams;

/// Names of the tensors a stage with `range` needs, as (name in the shard,
/// name in the model) pairs, in the order they are written.
std::vector<std::pair<std::string, std::string>> shard_tensor_names(const GgufFile &model,
                                                                    const ModelHparams &hp,
                                                                    LayerRange range);

/// Writes the shard of `range` to `out_path` (atomically: a temp file renamed
/// into place). `progress(bytes_done, bytes_total)` may be empty. Errors:
/// kOutOfRange (range), kCorrupt (missing tensor), kResource (write failure).
void write_shard(const GgufFile &model, const ModelHparams &hp, LayerRange range,
                 const std::string &model_sha256, const std::string &out_path,
                 const std::function<void(uint64_t, uint64_t)> &progress = {});

/// Bytes [offset, offset + size) of a file.
struct ByteRange {
    uint64_t offset = 0;
    uint64_t size = 0;
};

/// Receives bytes in order; throws to stop the reader.
using ByteSink = std::function<void(const char *data, size_t n)>;

/// Reads byte ranges of the model file: calls `sink` with exactly the bytes of
/// `ranges`, concatenated in order (in as many calls as it likes). Throws
/// colony::Error when it cannot. An HTTP reader may fetch neighbouring ranges
/// in one request.
using ModelBytesReader =
    std::function<void(const std::vector<ByteRange> &ranges, const ByteSink &sink)>;

/// write_shard with the tensor bytes from `read` instead of `model.path()`:
/// `model` may hold only the header (GgufFile::open_header), so a worker can
/// build its shard from ranges of a remote file. The shard's bytes equal
/// those of the other form for the same model. Errors: those of the other
/// form, kCorrupt when `read` delivers fewer bytes than the tensors need,
/// and whatever `read` throws (the partial file is removed).
void write_shard(const GgufFile &model, const ModelHparams &hp, LayerRange range,
                 const std::string &model_sha256, const std::string &out_path,
                 const ModelBytesReader &read,
                 const std::function<void(uint64_t, uint64_t)> &progress = {});

/// Hex SHA-256 of a whole file, streamed. Error(kNotFound) if unreadable.
std::string sha256_file_hex(const std::string &path);

}  // namespace colony
