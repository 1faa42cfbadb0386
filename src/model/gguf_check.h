// A structural check of a GGUF file that runs before ggml's gguf reader or
// libllama sees the bytes, so that a malformed or hostile file is one clear
// error instead of an abort, an out-of-bounds read or an allocation of
// whatever a count says.
//
// Format: GGUF v2/v3 (ggml/docs/gguf.md in the pinned llama.cpp tree). The
// reader walks the header with 64-bit overflow-checked arithmetic and checks:
//   - magic, version (2 or 3; a byte-swapped version is named as such);
//   - tensor and key/value counts against the limits and against the bytes
//     left (each entry takes at least 9 bytes), before anything is allocated;
//   - every string and array length against the bytes left; value types and
//     array element types are known ones, no nested arrays, bools are 0 or 1;
//   - keys unique and non-empty, general.alignment a u32 power of two;
//   - tensor names unique and shorter than GGML_MAX_NAME, at most
//     GGML_MAX_DIMS dimensions, each >= 0, element count and byte size
//     representable, a ggml type that exists, rows a whole number of blocks,
//     offsets aligned and every tensor's bytes inside the data section;
//   - the tokenizer arrays (gguf_check_vocab.cpp): tokens are strings and
//     unique as libllama keys them, scores (f32 or i32) and token types (i32)
//     have one entry per token, merges are strings, special token ids are
//     integers inside the vocabulary.
// The CVE history of GGUF readers is in exactly these classes (size
// arithmetic overflow, unbounded counts, arrays of another element type than
// the reader assumes); docs/security.md lists what the check covers.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace colony {

/// Upper bounds on what a GGUF header may declare; the defaults admit every
/// real model (the largest have a few thousand tensors and ~260k tokens).
struct GgufCheckLimits {
    uint64_t max_tensors = 1u << 20;
    uint64_t max_kv = 1u << 20;
    uint64_t max_string_bytes = 64ull << 20;  // one string (a chat template, a token)
    uint64_t max_array_elements = 1ull << 28;
};

/// Checks bytes [0, bytes.size()) as a whole GGUF file. `what` names it in the
/// message (a path). Throws Error(kCorrupt, "<what>: <reason>") naming the
/// field, its index and the values found. Never reads outside `bytes`; the
/// memory it allocates is bounded by the bytes present.
void check_gguf(std::span<const uint8_t> bytes, const std::string &what,
                const GgufCheckLimits &limits = {});

/// check_gguf for the first `prefix.size()` bytes of a file of `file_size`
/// bytes (a header fetched with an HTTP Range request): the header must lie
/// wholly in `prefix`, and every tensor's bytes inside `file_size`. Returns
/// the data section's offset (where the header, with its padding, ends).
/// Throws Error(kCorrupt) as check_gguf does; a header cut short by the end of
/// `prefix` reads as truncated (fetch more and call again).
uint64_t check_gguf_header(std::span<const uint8_t> prefix, uint64_t file_size,
                           const std::string &what, const GgufCheckLimits &limits = {});

/// Maps `path` read-only and runs check_gguf on it (only the header's pages
/// are touched). Throws Error(kNotFound) when the file cannot be opened, and
/// what check_gguf throws.
void check_gguf_file(const std::string &path, const GgufCheckLimits &limits = {});

}  // namespace colony
