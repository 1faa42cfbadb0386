// Packing of F32 hidden states into the wire dtypes and back, with the error
// bounds stated in net/wire_dtype.h.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "net/wire_dtype.h"
#include "util/error.h"

namespace colony {
namespace {

std::vector<float> random_hidden(uint32_t n_embd, uint32_t n_tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> v(size_t(n_embd) * n_tokens);
    for (float &x : v) {
        x = dist(rng);
    }
    v[0] = 1000.0f;  // an outlier, as residual streams have
    v[1] = -0.0003f;
    return v;
}

std::vector<float> round_trip(const std::vector<float> &x, uint32_t n_embd, WireDtype dtype) {
    const std::vector<uint8_t> packed = wire_pack_hidden(x, n_embd, dtype);
    EXPECT_EQ(packed.size(), (x.size() / n_embd) * wire_dtype_row_bytes(dtype, n_embd));
    std::vector<float> y(x.size());
    wire_unpack_hidden(packed, dtype, n_embd, y);
    return y;
}

TEST(WireDtype, F32IsExact) {
    const std::vector<float> x = random_hidden(64, 5, 1);
    EXPECT_EQ(round_trip(x, 64, WIRE_DTYPE_F32), x);
}

TEST(WireDtype, F16WithinHalfUlp) {
    const std::vector<float> x = random_hidden(128, 7, 2);
    const std::vector<float> y = round_trip(x, 128, WIRE_DTYPE_F16);
    for (size_t i = 0; i < x.size(); ++i) {
        if (std::fabs(x[i]) >= 6.2e-5f) {  // f16 normal range
            EXPECT_LE(std::fabs(x[i] - y[i]), std::ldexp(std::fabs(x[i]), -11)) << i;
        } else {
            EXPECT_LE(std::fabs(x[i] - y[i]), 6.0e-8f) << i;  // subnormal step / 2
        }
    }
}

TEST(WireDtype, Q8_0WithinOneStepPerBlock) {
    const uint32_t n_embd = 96;  // 3 blocks of 32
    const std::vector<float> x = random_hidden(n_embd, 4, 3);
    const std::vector<float> y = round_trip(x, n_embd, WIRE_DTYPE_Q8_0);
    double max_rel = 0.0;
    for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0.0f;
        for (size_t i = 0; i < 32; ++i) {
            amax = std::max(amax, std::fabs(x[b * 32 + i]));
        }
        for (size_t i = 0; i < 32; ++i) {
            const float err = std::fabs(x[b * 32 + i] - y[b * 32 + i]);
            EXPECT_LE(err, amax / 127.0f) << "block " << b << " index " << i;
            max_rel = std::max(max_rel, double(err / amax));
        }
    }
    EXPECT_GT(max_rel, 0.0);  // it really is lossy: the test would notice an f32 copy
}

TEST(WireDtype, RowBytesAndNames) {
    EXPECT_EQ(wire_dtype_row_bytes(WIRE_DTYPE_F32, 2048), 8192u);
    EXPECT_EQ(wire_dtype_row_bytes(WIRE_DTYPE_F16, 2048), 4096u);
    EXPECT_EQ(wire_dtype_row_bytes(WIRE_DTYPE_Q8_0, 2048), 2176u);  // 64 blocks x 34
    EXPECT_EQ(wire_dtype_ggml_type(WIRE_DTYPE_Q8_0), GGML_TYPE_Q8_0);
    EXPECT_EQ(wire_dtype_from_name("f16"), WIRE_DTYPE_F16);
    EXPECT_EQ(wire_dtype_from_name("q8_0"), WIRE_DTYPE_Q8_0);
    EXPECT_STREQ(wire_dtype_name(WIRE_DTYPE_F32), "f32");
    EXPECT_THROW(wire_dtype_from_name("bf16"), Error);
    EXPECT_THROW(wire_dtype_row_bytes(WIRE_DTYPE_Q8_0, 48), Error);
    EXPECT_THROW(wire_dtype_row_bytes(static_cast<WireDtype>(7), 64), Error);
}

TEST(WireDtype, AnUnknownTypeHasNoGgmlType) {
    EXPECT_EQ(wire_dtype_ggml_type(WIRE_DTYPE_F32), GGML_TYPE_F32);
    EXPECT_EQ(wire_dtype_ggml_type(WIRE_DTYPE_F16), GGML_TYPE_F16);
    // Never a silent F16: the caller learns that the type is not one it knows.
    try {
        (void)wire_dtype_ggml_type(WIRE_DTYPE_COUNT);
        FAIL() << "an unknown wire dtype mapped to a ggml type";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
}

TEST(WireDtype, RejectsShapesThatDoNotFit) {
    const std::vector<float> x(100, 1.0f);
    EXPECT_THROW(wire_pack_hidden(x, 64, WIRE_DTYPE_F16), Error);  // 100 % 64 != 0
    EXPECT_THROW(wire_pack_hidden(x, 0, WIRE_DTYPE_F16), Error);
    EXPECT_THROW(wire_pack_hidden(x, 50, WIRE_DTYPE_Q8_0), Error);  // 50 % 32 != 0
    const std::vector<uint8_t> packed = wire_pack_hidden(x, 50, WIRE_DTYPE_F16);
    std::vector<float> y(100);
    EXPECT_THROW(wire_unpack_hidden({packed.data(), packed.size() - 1}, WIRE_DTYPE_F16, 50, y),
                 Error);
    EXPECT_THROW(wire_unpack_hidden(packed, WIRE_DTYPE_F32, 50, y), Error);
    EXPECT_NO_THROW(wire_unpack_hidden(packed, WIRE_DTYPE_F16, 50, y));
    EXPECT_EQ(y, x);
}

}  // namespace
}  // namespace colony
