// Hidden-state element types on the wire (DESIGN.md, decision 1: f16 by
// default, f32 on request, q8_0 for slow links) and the packing of an F32
// hidden state into them and back. Conversions are ggml's own, so a stage
// sees exactly the values that ggml would produce for the same type:
//   f16:  ggml_fp32_to_fp16_row / ggml_fp16_to_fp32_row (IEEE binary16, round to nearest)
//   q8_0: ggml_quantize_chunk(GGML_TYPE_Q8_0) / ggml_get_type_traits(GGML_TYPE_Q8_0)->to_float
//         (blocks of 32 values: one f16 scale d = absmax/127, 32 int8 quants; 34 bytes)
// ref: ggml/include/ggml.h and ggml/src/ggml-common.h (block_q8_0) of the pinned tree.
//
// Error bounds of a round trip x -> wire -> x' (tested in tests/net/wire_dtype_test.cpp):
//   f32:  exact.
//   f16:  |x - x'| <= 2^-11 |x| for |x| in f16's normal range [6.1e-5, 65504];
//         values beyond 65504 become inf.
//   q8_0: |x - x'| <= absmax(block) / 127 per block of 32 (half a quant step from
//         rounding plus the f16 rounding of the scale).
// Values are not checked for NaN or inf: a peer can send them, and they only
// spoil that request's logits.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ggml.h"

namespace colony {

/// Element type of a hidden state on the wire. Values are part of the wire
/// protocol (pinned below): never renumber.
enum WireDtype : uint8_t {
    WIRE_DTYPE_F32 = 0,
    WIRE_DTYPE_F16 = 1,
    WIRE_DTYPE_Q8_0 = 2,
    WIRE_DTYPE_COUNT = 3,
};
static_assert(WIRE_DTYPE_F32 == 0 && WIRE_DTYPE_F16 == 1 && WIRE_DTYPE_Q8_0 == 2,
              "WireDtype values are part of the wire protocol");

/// "f32", "f16", "q8_0"; "invalid" for values >= WIRE_DTYPE_COUNT.
const char *wire_dtype_name(WireDtype dtype);

/// Parses "f32" | "f16" | "q8_0" (the --wire-type option).
/// Throws Error(kInvalidArgument) naming the accepted values otherwise.
WireDtype wire_dtype_from_name(std::string_view name);

/// The ggml type with the same memory layout (GGML_TYPE_F32, _F16, _Q8_0).
ggml_type wire_dtype_ggml_type(WireDtype dtype);

/// Bytes of one token's row of n_embd values in `dtype` (f32: 4*n_embd,
/// f16: 2*n_embd, q8_0: 34*n_embd/32). Throws Error(kInvalidArgument) when
/// dtype is unknown or n_embd is not a multiple of the block size (q8_0: 32).
uint64_t wire_dtype_row_bytes(WireDtype dtype, uint32_t n_embd);

/// Packs an F32 hidden state [n_embd, n_tokens] (row-major: token t's values
/// are src[t*n_embd .. t*n_embd+n_embd)) into `dtype`. src.size() must be a
/// multiple of n_embd; returns n_tokens * wire_dtype_row_bytes(dtype, n_embd)
/// bytes. Throws Error(kInvalidArgument) on a shape that does not fit.
std::vector<uint8_t> wire_pack_hidden(std::span<const float> src, uint32_t n_embd, WireDtype dtype);

/// Unpacks bytes produced by wire_pack_hidden into F32 [n_embd, n_tokens]
/// with n_tokens = dst.size() / n_embd. Throws Error(kInvalidArgument) unless
/// src.size() == n_tokens * wire_dtype_row_bytes(dtype, n_embd) and dst.size()
/// is a multiple of n_embd.
void wire_unpack_hidden(std::span<const uint8_t> src, WireDtype dtype, uint32_t n_embd,
                        std::span<float> dst);

}  // namespace colony
