#include "net/wire_dtype.h"

#include <cstring>
#include <string>

#include "util/error.h"

namespace colony {

namespace {

constexpr uint32_t kQ8_0Block = 32;       // QK8_0 in ggml-common.h
constexpr uint64_t kQ8_0BlockBytes = 34;  // sizeof(block_q8_0): f16 scale + 32 int8

void check_shape(size_t n_values, uint32_t n_embd, const char *what) {
    if (n_embd == 0) {
        throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": n_embd must be > 0");
    }
    if (n_values % n_embd != 0) {
        throw Error(
            ErrorCode::kInvalidArgument,
            std::string(what) + ": " + std::to_string(n_values) +
                " values are not a whole number of rows of n_embd=" + std::to_string(n_embd));
    }
}

}  // namespace

const char *wire_dtype_name(WireDtype dtype) {
    switch (dtype) {
        case WIRE_DTYPE_F32:
            return "f32";
        case WIRE_DTYPE_F16:
            return "f16";
        case WIRE_DTYPE_Q8_0:
            return "q8_0";
        default:
            return "invalid";
    }
}

WireDtype wire_dtype_from_name(std::string_view name) {
    if (name == "f32") {
        return WIRE_DTYPE_F32;
    }
    if (name == "f16") {
        return WIRE_DTYPE_F16;
    }
    if (name == "q8_0") {
        return WIRE_DTYPE_Q8_0;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "unknown wire type '" + std::string(name) + "' (expected f32, f16 or q8_0)");
}

ggml_type wire_dtype_ggml_type(WireDtype dtype) {
    switch (dtype) {
        case WIRE_DTYPE_F32:
            return GGML_TYPE_F32;
        case WIRE_DTYPE_F16:
            return GGML_TYPE_F16;
        case WIRE_DTYPE_Q8_0:
            return GGML_TYPE_Q8_0;
        default:
            break;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "invalid wire dtype " + std::to_string(static_cast<unsigned>(dtype)));
}

uint64_t wire_dtype_row_bytes(WireDtype dtype, uint32_t n_embd) {
    switch (dtype) {
        case WIRE_DTYPE_F32:
            return 4ull * n_embd;
        case WIRE_DTYPE_F16:
            return 2ull * n_embd;
        case WIRE_DTYPE_Q8_0:
            if (n_embd % kQ8_0Block != 0) {
                throw Error(
                    ErrorCode::kInvalidArgument,
                    "q8_0 needs n_embd to be a multiple of 32, got " + std::to_string(n_embd));
            }
            return kQ8_0BlockBytes * (n_embd / kQ8_0Block);
        default:
            break;
    }
    throw Error(ErrorCode::kInvalidArgument,
                "invalid wire dtype " + std::to_string(static_cast<unsigned>(dtype)));
}

std::vector<uint8_t> wire_pack_hidden(std::span<const float> src, uint32_t n_embd,
                                      WireDtype dtype) {
    check_shape(src.size(), n_embd, "wire_pack_hidden");
    const uint64_t n_tokens = src.size() / n_embd;
    std::vector<uint8_t> out(n_tokens * wire_dtype_row_bytes(dtype, n_embd));
    switch (dtype) {
        case WIRE_DTYPE_F32:
            std::memcpy(out.data(), src.data(), out.size());
            break;
        case WIRE_DTYPE_F16:
            ggml_fp32_to_fp16_row(src.data(), reinterpret_cast<ggml_fp16_t *>(out.data()),
                                  static_cast<int64_t>(src.size()));
            break;
        case WIRE_DTYPE_Q8_0:
            ggml_quantize_chunk(GGML_TYPE_Q8_0, src.data(), out.data(), 0,
                                static_cast<int64_t>(n_tokens), n_embd, nullptr);
            break;
        default:
            break;  // unreachable: wire_dtype_row_bytes threw
    }
    return out;
}

void wire_unpack_hidden(std::span<const uint8_t> src, WireDtype dtype, uint32_t n_embd,
                        std::span<float> dst) {
    check_shape(dst.size(), n_embd, "wire_unpack_hidden");
    const uint64_t n_tokens = dst.size() / n_embd;
    const uint64_t expected = n_tokens * wire_dtype_row_bytes(dtype, n_embd);
    if (src.size() != expected) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("wire_unpack_hidden: ") + wire_dtype_name(dtype) + " [" +
                        std::to_string(n_embd) + ", " + std::to_string(n_tokens) + "] needs " +
                        std::to_string(expected) + " bytes, got " + std::to_string(src.size()));
    }
    switch (dtype) {
        case WIRE_DTYPE_F32:
            std::memcpy(dst.data(), src.data(), src.size());
            break;
        case WIRE_DTYPE_F16:
            ggml_fp16_to_fp32_row(reinterpret_cast<const ggml_fp16_t *>(src.data()), dst.data(),
                                  static_cast<int64_t>(dst.size()));
            break;
        case WIRE_DTYPE_Q8_0:
            ggml_get_type_traits(GGML_TYPE_Q8_0)
                ->to_float(src.data(), dst.data(), static_cast<int64_t>(dst.size()));
            break;
        default:
            break;
    }
}

}  // namespace colony
