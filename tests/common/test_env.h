// Shared helpers for colony's tests: where the real models are, temp dirs,
// and a libllama reference runner for golden comparisons.
#pragma once

#include <cstdint>
#include <string>

#include <vector>
#include "ggml.h"

namespace colony::test {

/// ../shared/models beside the repository (CMake COLONY_MODELS_DIR).
std::string models_dir();
/// Path of a file in models_dir().
std::string model_path(const std::string &name);
/// A fresh empty directory under $TMPDIR, removed by the caller's TempDir.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

/// libllama's own run of a model: logits of the last prompt token and greedy
/// continuation, with flash attention on and the CPU backend, as a reference.
struct ReferenceRun {
    std::vector<float> last_logits;  // [n_vocab]
    std::vector<int32_t> greedy;     // greedy tokens after the prompt
};
/// type_k/type_v: the KV cache's types (libllama rotates quantized ones).
ReferenceRun llama_reference(const std::string &model, const std::vector<int32_t> &prompt,
                             int n_greedy, int n_threads = 2, ggml_type type_k = GGML_TYPE_F16,
                             ggml_type type_v = GGML_TYPE_F16);

/// max |a-b| and max |a| for logits comparison.
struct Diff {
    float max_abs_diff = 0;
    float max_abs_ref = 0;
};
Diff compare(const float *a, const float *b, size_t n);

}  // namespace colony::test
