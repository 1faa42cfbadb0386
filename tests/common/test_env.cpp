#include "common/test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "llama.h"

namespace colony::test {

namespace {
// Keep libllama quiet in tests unless COLONY_LOG=debug.
struct QuietLlama {
    QuietLlama() {
        const char *env = std::getenv("COLONY_LOG");
        if (env && std::string(env) == "debug")
            return;
        llama_log_set(
            [](ggml_log_level level, const char *text, void *) {
                if (level == GGML_LOG_LEVEL_ERROR)
                    fputs(text, stderr);
            },
            nullptr);
    }
} g_quiet_llama;
}  // namespace

std::string models_dir() {
    if (const char *env = std::getenv("COLONY_MODELS_DIR"))
        return env;
    return COLONY_TEST_MODELS_DIR;
}

std::string model_path(const std::string &name) {
    return models_dir() + "/" + name;
}

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "colony-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

ReferenceRun llama_reference(const std::string &model, const std::vector<int32_t> &prompt,
                             int n_greedy, int n_threads, ggml_type type_k, ggml_type type_v) {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *m = llama_model_load_from_file(model.c_str(), mp);
    if (!m)
        throw std::runtime_error("libllama cannot load " + model);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    cp.type_k = type_k;
    cp.type_v = type_v;
    llama_context *ctx = llama_init_from_model(m, cp);
    if (!ctx)
        throw std::runtime_error("libllama cannot create a context");
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    ReferenceRun out;
    std::vector<int32_t> toks = prompt;
    if (llama_decode(ctx, llama_batch_get_one(toks.data(), static_cast<int32_t>(toks.size()))) !=
        0) {
        throw std::runtime_error("llama_decode failed");
    }
    const float *logits = llama_get_logits_ith(ctx, -1);
    out.last_logits.assign(logits, logits + n_vocab);
    for (int i = 0; i < n_greedy; ++i) {
        int32_t best = static_cast<int32_t>(std::max_element(logits, logits + n_vocab) - logits);
        out.greedy.push_back(best);
        if (llama_decode(ctx, llama_batch_get_one(&best, 1)) != 0)
            throw std::runtime_error("llama_decode failed");
        logits = llama_get_logits_ith(ctx, -1);
    }
    llama_free(ctx);
    llama_model_free(m);
    return out;
}

Diff compare(const float *a, const float *b, size_t n) {
    Diff d;
    for (size_t i = 0; i < n; ++i) {
        d.max_abs_diff = std::max(d.max_abs_diff, std::fabs(a[i] - b[i]));
        d.max_abs_ref = std::max(d.max_abs_ref, std::fabs(b[i]));
    }
    return d;
}

}  // namespace colony::test
