// Low-rank factorization (model/low_rank.h) and `colony compress`
// (model/compress.h): the factors reproduce a matrix of their rank, their
// error is the singular values' tail (Eckart-Young), and a compressed file
// runs through colony's graph on one stage and on three with the same logits.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "common/test_env.h"
#include "gguf.h"
#include "model/compress.h"
#include "model/low_rank.h"
#include "runtime/stage_runner.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony::test {
namespace {

const std::string kPrompt = "Once upon a time, in a small town";

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> n(0, 1);
    std::vector<float> m(static_cast<size_t>(rows * cols));
    for (float &x : m)
        x = n(gen);
    return m;
}

// W = B0 A0 with B0 (rows x r) and A0 (r x cols): a matrix of rank r.
std::vector<float> rank_r_matrix(int64_t rows, int64_t cols, int64_t r, uint32_t seed) {
    const std::vector<float> b = random_matrix(rows, r, seed), a = random_matrix(r, cols, seed + 1);
    std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < r; ++k)
            for (int64_t j = 0; j < cols; ++j)
                w[i * cols + j] += b[i * r + k] * a[k * cols + j];
    return w;
}

// ||W - B A||_F / ||W||_F, computed from the factors.
double measured_error(const std::vector<float> &w, const LowRankFactors &f, int64_t n_in,
                      int64_t n_out) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < n_out; ++i) {
        for (int64_t j = 0; j < n_in; ++j) {
            double ba = 0;
            for (int64_t k = 0; k < f.rank; ++k)
                ba += double{f.b[i * f.rank + k]} * f.a[k * n_in + j];
            const double x = w[i * n_in + j];
            diff += (x - ba) * (x - ba);
            norm += x * x;
        }
    }
    return std::sqrt(diff / norm);
}

TEST(LowRank, FactorsOfAMatrixOfThatRankAreExact) {
    const int64_t n_out = 40, n_in = 30;
    const std::vector<float> w = rank_r_matrix(n_out, n_in, 3, 7);
    for (int64_t exact_limit : {int64_t{1024}, int64_t{0}}) {  // exact SVD, then randomized
        const LowRankFactors f = factorize_low_rank(w.data(), n_in, n_out, 3, 1, 2, exact_limit);
        ASSERT_EQ(f.a.size(), static_cast<size_t>(3 * n_in));
        ASSERT_EQ(f.b.size(), static_cast<size_t>(n_out * 3));
        EXPECT_LT(measured_error(w, f, n_in, n_out), 1e-5) << "exact_limit " << exact_limit;
        EXPECT_LT(f.rel_error, 1e-3) << "exact_limit " << exact_limit;
    }
}

TEST(LowRank, ErrorIsTheSingularValueTail) {
    const int64_t n_out = 64, n_in = 48, rank = 16;
    const std::vector<float> w = random_matrix(n_out, n_in, 3);
    const LowRankFactors exact = factorize_low_rank(w.data(), n_in, n_out, rank, 1, 2, 1024);
    const double e = measured_error(w, exact, n_in, n_out);
    EXPECT_NEAR(exact.rel_error, e, 1e-4);
    EXPECT_GT(e, 0.1);  // a random matrix is far from rank 16
    // the randomized SVD is within 2 % of the optimum, never below it
    const LowRankFactors rnd = factorize_low_rank(w.data(), n_in, n_out, rank, 1, 2, 0);
    const double er = measured_error(w, rnd, n_in, n_out);
    EXPECT_NEAR(rnd.rel_error, er, 1e-4);
    EXPECT_GE(er, e - 1e-5);
    EXPECT_LE(er, e * 1.02);
    // a higher rank never does worse; the full rank is exact
    const LowRankFactors more = factorize_low_rank(w.data(), n_in, n_out, 32, 1, 2, 1024);
    EXPECT_LT(measured_error(w, more, n_in, n_out), e);
    const LowRankFactors full = factorize_low_rank(w.data(), n_in, n_out, n_in, 1, 2, 1024);
    EXPECT_LT(measured_error(w, full, n_in, n_out), 1e-5);
}

// ||(W - B A) diag(s)||_F / ||W diag(s)||_F
double weighted_error(const std::vector<float> &w, const LowRankFactors &f,
                      const std::vector<float> &s, int64_t n_in, int64_t n_out) {
    std::vector<float> ws(w.size());
    LowRankFactors fs = f;
    for (int64_t i = 0; i < n_out; ++i)
        for (int64_t j = 0; j < n_in; ++j)
            ws[i * n_in + j] = w[i * n_in + j] * s[j];
    for (int64_t k = 0; k < f.rank; ++k)
        for (int64_t j = 0; j < n_in; ++j)
            fs.a[k * n_in + j] = f.a[k * n_in + j] * s[j];
    return measured_error(ws, fs, n_in, n_out);
}

TEST(LowRank, InputScaleMinimizesTheWeightedError) {
    const int64_t n_out = 50, n_in = 40, rank = 10;
    const std::vector<float> w = random_matrix(n_out, n_in, 5);
    std::vector<float> s(n_in);
    for (int64_t j = 0; j < n_in; ++j)
        s[j] = j < 8 ? 10.0f : 0.5f;  // a few loud input channels, as in real activations
    const LowRankFactors plain = factorize_low_rank(w.data(), n_in, n_out, rank, 1);
    const LowRankFactors scaled =
        factorize_low_rank(w.data(), n_in, n_out, rank, 1, 2, 1024, s.data());
    const double e_scaled = weighted_error(w, scaled, s, n_in, n_out);
    EXPECT_NEAR(scaled.rel_error, e_scaled, 1e-4);
    EXPECT_LT(e_scaled, 0.8 * weighted_error(w, plain, s, n_in, n_out));
    // and in the plain norm the plain SVD is the better one (Eckart-Young)
    EXPECT_LT(measured_error(w, plain, n_in, n_out), measured_error(w, scaled, n_in, n_out));
}

TEST(LowRank, RankOutsideTheMatrixIsAnError) {
    const std::vector<float> w = random_matrix(8, 4, 1);
    EXPECT_THROW(factorize_low_rank(w.data(), 4, 8, 0, 1), Error);
    EXPECT_THROW(factorize_low_rank(w.data(), 4, 8, 5, 1), Error);
}

class CompressTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("colony-compress-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string compress(const std::string &name, CompressOptions o) {
        o.in_path = model_path("stories260K-f32.gguf");
        o.out_path = (dir_ / name).string();
        result_ = compress_gguf(o);
        return o.out_path;
    }

    struct Run {
        std::vector<int32_t> tokens;
        std::vector<float> logits;
    };
    static Run greedy(const std::string &path, const std::vector<uint32_t> &cuts) {
        StageChain chain(path, cuts);
        Tokenizer tok(path);
        Run r;
        r.tokens = chain.greedy(tok.tokenize(kPrompt, true, false), 16, &r.logits);
        return r;
    }

    std::filesystem::path dir_;
    CompressResult result_;
};

TEST_F(CompressTest, FullRankFactorsKeepTheLogits) {
    CompressOptions o;
    o.rank = 64;  // stories260K: n_embd 64, so every matrix's full rank
    o.kinds = parse_compress_kinds("all");
    o.type = GGML_TYPE_F32;
    const std::string path = compress("full.gguf", o);
    ASSERT_EQ(result_.tensors.size(), 35u);  // 5 blocks x (q, k, v, output, gate, up, down)
    for (const CompressedTensor &c : result_.tensors)
        EXPECT_LT(c.rel_error, 1e-3) << c.name;
    const Run want = greedy(model_path("stories260K-f32.gguf"), {});
    const Run got = greedy(path, {});
    // B (A x) rounds differently from W x: the golden tolerance (test_golden.cpp);
    // measured 2.7e-4 of the largest logit
    const Diff d = compare(got.logits.data(), want.logits.data(), want.logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-3f * d.max_abs_ref);
    EXPECT_EQ(got.tokens, want.tokens);
}

TEST_F(CompressTest, HalfRankIsSmallerAndRunsAlikeOnThreeStages) {
    CompressOptions o;
    o.rank_ratio = 0.5;
    o.kinds = parse_compress_kinds("ffn");
    o.blocks = {1, 2, 3};
    const std::string path = compress("half.gguf", o);
    ASSERT_EQ(result_.tensors.size(), 9u);
    for (const CompressedTensor &c : result_.tensors) {
        EXPECT_EQ(c.rank, 32) << c.name;
        EXPECT_LT(c.bytes_after, c.bytes_before) << c.name;
        EXPECT_GT(c.rel_error, 0.01) << c.name;
    }
    EXPECT_LT(result_.file_bytes_after, result_.file_bytes_before);
    const Run whole = greedy(model_path("stories260K-f32.gguf"), {});
    const Run one = greedy(path, {});
    const Diff changed = compare(one.logits.data(), whole.logits.data(), whole.logits.size());
    EXPECT_GT(changed.max_abs_diff, 1e-2f);  // the factors are lossy: this test can fail
    const Run three = greedy(path, {2, 4});
    const Diff d = compare(three.logits.data(), one.logits.data(), one.logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-5f * d.max_abs_ref);
    EXPECT_EQ(three.tokens, one.tokens);
}

TEST_F(CompressTest, QuantizedFactorsFollowTheBlockSize) {
    CompressOptions o;
    o.rank = 20;  // rounded up to q8_0's block of 32
    o.kinds = {"ffn_down"};
    o.type = GGML_TYPE_Q8_0;
    compress("q8.gguf", o);
    ASSERT_EQ(result_.tensors.size(), 5u);
    for (const CompressedTensor &c : result_.tensors) {
        EXPECT_EQ(c.rank, 32) << c.name;
        EXPECT_EQ(c.type_a, GGML_TYPE_F16) << c.name;  // ffn_down's rows are 172 long
        EXPECT_EQ(c.type_b, GGML_TYPE_Q8_0) << c.name;
    }
}

TEST_F(CompressTest, ThreadsDoNotChangeTheBytes) {
    auto bytes = [](const std::string &path) {
        std::ifstream in(path, std::ios::binary);
        return std::vector<char>(std::istreambuf_iterator<char>(in), {});
    };
    CompressOptions o;
    o.rank_ratio = 0.5;
    o.kinds = parse_compress_kinds("all");
    const std::vector<char> one = bytes(compress("t1.gguf", o));
    o.n_threads = 3;
    const std::vector<char> three = bytes(compress("t3.gguf", o));
    EXPECT_GT(one.size(), 100000u);
    EXPECT_EQ(one, three);
}

// An importance matrix as llama-imatrix writes it (NAME.in_sum2 [n_in, 1],
// NAME.counts [1]) for stories260K's feed-forward matrices, every channel's
// mean square `ms(j)`.
template <class F>
std::string write_imatrix(const std::filesystem::path &path, F ms, bool with_down = true) {
    gguf_context *g = gguf_init_empty();
    ggml_context *ctx = ggml_init({ggml_tensor_overhead() * 64 + (1 << 20), nullptr, false});
    for (int il = 0; il < 5; ++il) {
        for (const char *kind : {"ffn_gate", "ffn_up", "ffn_down"}) {
            if (!with_down && std::string(kind) == "ffn_down")
                continue;
            const std::string name = "blk." + std::to_string(il) + "." + kind + ".weight";
            const int64_t n_in = std::string(kind) == "ffn_down" ? 172 : 64;
            ggml_tensor *sum2 = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_in, 1);
            ggml_tensor *counts = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 1);
            ggml_set_name(sum2, (name + ".in_sum2").c_str());
            ggml_set_name(counts, (name + ".counts").c_str());
            for (int64_t j = 0; j < n_in; ++j)
                static_cast<float *>(sum2->data)[j] = 100.0f * ms(j);
            static_cast<float *>(counts->data)[0] = 100.0f;
            gguf_add_tensor(g, sum2);
            gguf_add_tensor(g, counts);
        }
    }
    gguf_write_to_file(g, path.c_str(), false);
    gguf_free(g);
    ggml_free(ctx);
    return path.string();
}

TEST_F(CompressTest, ImportanceMatrixWeightsTheFactors) {
    CompressOptions o;
    o.rank = 32;
    o.kinds = parse_compress_kinds("ffn");
    o.type = GGML_TYPE_F32;
    const Run plain = greedy(compress("plain.gguf", o), {});
    // equal activations on every channel: the plain SVD's factors
    o.imatrix_path = write_imatrix(dir_ / "flat.imatrix.gguf", [](int64_t) { return 4.0f; });
    const Run flat = greedy(compress("flat.gguf", o), {});
    const Diff d = compare(flat.logits.data(), plain.logits.data(), plain.logits.size());
    EXPECT_LE(d.max_abs_diff, 1e-3f * d.max_abs_ref);
    // loud channels change them
    o.imatrix_path = write_imatrix(dir_ / "loud.imatrix.gguf",
                                   [](int64_t j) { return j % 7 == 0 ? 100.0f : 0.01f; });
    const Run loud = greedy(compress("loud.gguf", o), {});
    const Diff dl = compare(loud.logits.data(), plain.logits.data(), plain.logits.size());
    EXPECT_GT(dl.max_abs_diff, 1e-2f);
    // a matrix the importance matrix lacks is an error, and nothing is written
    // (with factorizations running ahead on other threads)
    o.n_threads = 4;
    o.imatrix_path = write_imatrix(
        dir_ / "partial.imatrix.gguf", [](int64_t) { return 1.0f; },
        /*with_down=*/false);
    try {
        compress("partial.gguf", o);
        ADD_FAILURE() << "accepted";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
        EXPECT_NE(std::string(e.what()).find("has no entry for blk.0.ffn_down.weight"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir_ / "partial.gguf"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "partial.gguf.partial"));
}

TEST_F(CompressTest, BadOptionsAreClearErrors) {
    auto message = [&](CompressOptions o) -> std::string {
        try {
            compress("bad.gguf", std::move(o));
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            return e.what();
        }
        return "accepted";
    };
    CompressOptions o;
    o.kinds = {"ffn_up"};
    EXPECT_EQ(message(o), "give one of --rank N and --rank-ratio R");
    o.rank_ratio = 1.5;
    EXPECT_EQ(message(o), "--rank-ratio must be in (0, 1]");
    o.rank_ratio = 0.5;
    o.blocks = {5};
    EXPECT_EQ(message(o), "--layers: block 5 does not exist; the model has blocks 0-4");
    o.blocks = {};
    o.kinds = {"attn_qkv"};
    EXPECT_NE(message(o).find("has no matrix of the kinds and blocks chosen"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "bad.gguf"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "bad.gguf.partial"));

    EXPECT_EQ(parse_compress_kinds("ffn,attn_q"),
              (std::vector<std::string>{"ffn_gate", "ffn_up", "ffn_down", "attn_q"}));
    EXPECT_EQ(parse_compress_kinds("all").size(), 8u);
    EXPECT_THROW(parse_compress_kinds("ffn_upp"), Error);
    EXPECT_EQ(parse_factor_type("Q8_0"), GGML_TYPE_Q8_0);
    EXPECT_THROW(parse_factor_type("iq2_xxs"), Error);  // needs an importance matrix
}

}  // namespace
}  // namespace colony::test
