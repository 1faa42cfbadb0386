// `colony compress`: a GGUF whose chosen block matrices are replaced by their
// low-rank factors (model/low_rank.h), the "layerwise compression" of the
// source documents. The file keeps every key and every other tensor; a
// factorized `blk.N.K.weight` becomes `blk.N.K.weight.lr_a` (ne {n_in, r},
// applied first) and `blk.N.K.weight.lr_b` (ne {r, n_out}), which colony's
// weights loader and graph run as two mul_mats. libllama cannot load such a
// file (it has no low-rank tensors); colony's tokenizer still reads it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ggml.h"

namespace colony {

/// What to factorize and how. Exactly one of `rank` (> 0) and `rank_ratio`
/// (in (0, 1]) chooses each matrix's rank: r = rank, or r = ceil(rank_ratio *
/// min(n_in, n_out)); r is then rounded up to the factor type's block size
/// where that stays within min(n_in, n_out), and capped there.
struct CompressOptions {
    std::string in_path;
    std::string out_path;
    int64_t rank = 0;
    double rank_ratio = 0;
    /// Matrix kinds: attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate,
    /// ffn_up, ffn_down (dense blocks; MoE experts are not factorized).
    std::vector<std::string> kinds;
    /// Blocks to compress, ascending (empty: every block).
    std::vector<uint32_t> blocks;
    /// The factors' type; unset: each matrix's own type where it can be
    /// quantized without an importance matrix, else F16. A factor whose row
    /// is not a whole number of the type's blocks is written F16.
    std::optional<ggml_type> type;
    /// An importance matrix of the model from llama-imatrix (its GGUF form:
    /// `NAME.in_sum2` and `NAME.counts` per matrix, tools/imatrix in the
    /// pinned tree): each matrix is then factorized weighted by its input
    /// channels' RMS activation (low_rank.h, ASVD). Empty: plain SVD.
    std::string imatrix_path;
    int power_iterations = 2;
    uint64_t seed = 1;
    /// Matrices factorized at once (each on its own thread; memory grows
    /// with it: about 3 x 8 bytes per weight of the matrix).
    int n_threads = 1;
    /// Called before each tensor is written: (index, count, name).
    std::function<void(size_t, size_t, const std::string &)> on_progress;
};

/// One factorized matrix.
struct CompressedTensor {
    std::string name;
    int64_t n_in = 0, n_out = 0, rank = 0;
    ggml_type type_a = GGML_TYPE_F32, type_b = GGML_TYPE_F32;
    double rel_error = 0;  // ||W - B A||_F / ||W||_F before the factors are quantized
                           // (with an importance matrix: in its weighted norm)
    uint64_t bytes_before = 0, bytes_after = 0;
};

struct CompressResult {
    std::vector<CompressedTensor> tensors;
    uint64_t file_bytes_before = 0, file_bytes_after = 0;
};

/// The matrix kinds CompressOptions::kinds accepts, and the groups "attn",
/// "ffn" and "all" expanded. Error(kInvalidArgument) names an unknown kind.
std::vector<std::string> parse_compress_kinds(const std::string &list);

/// A factor type by ggml's name, any case ("q8_0", "F16"). Error
/// (kInvalidArgument) for an unknown name or a type that needs an importance
/// matrix.
ggml_type parse_factor_type(const std::string &name);

/// Writes the compressed GGUF (to out_path + ".partial", renamed when
/// complete). Errors: kNotFound/kCorrupt for the input (GgufFile::open),
/// kInvalidArgument for options (no rank, a rank of 0, a ratio outside
/// (0, 1], a type that needs an importance matrix, a block the model lacks, no
/// tensor matching), kCorrupt for an importance matrix that lacks a chosen
/// matrix or does not fit it, kResource when the output cannot be written.
CompressResult compress_gguf(const CompressOptions &opts);

}  // namespace colony
