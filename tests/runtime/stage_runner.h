// Test helper: drive a chain of stages (one or several layer ranges) the way
// a pipeline does, handing hidden states from one stage to the next.
#pragma once

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/stage.h"

namespace colony::test {

class StageChain {
  public:
    /// Splits [0, n_layer) at `cuts` (e.g. {2} -> [0,2),[2,L)); stage i
    /// offloads as gpu[i] says (none when gpu is shorter).
    StageChain(const std::string &model, const std::vector<uint32_t> &cuts, uint32_t n_ctx = 512,
               uint32_t n_ubatch = 512, ggml_type type_k = GGML_TYPE_F16,
               ggml_type type_v = GGML_TYPE_F16, const std::vector<GpuOffload> &gpu = {}) {
        file_ = GgufFile::open(model);
        hp_ = ModelHparams::from_gguf(*file_);
        uint32_t first = 0;
        std::vector<uint32_t> bounds = cuts;
        bounds.push_back(hp_.n_layer);
        for (uint32_t last : bounds) {
            StageConfig cfg;
            cfg.range = {first, last};
            cfg.n_ctx = n_ctx;
            cfg.n_ubatch = n_ubatch;
            cfg.n_threads = 2;
            cfg.type_k = type_k;
            cfg.type_v = type_v;
            if (stages_.size() < gpu.size())
                cfg.gpu = gpu[stages_.size()];
            stages_.push_back(std::make_unique<Stage>(file_, hp_, cfg));
            first = last;
        }
    }

    /// Stages of the given ranges in order (a gap between two ranges: the
    /// blocks between them are left out), each skipping `skip`'s blocks in it.
    StageChain(const std::string &model, const std::vector<LayerRange> &ranges,
               const LayerSkip &skip, uint32_t n_ctx = 512) {
        file_ = GgufFile::open(model);
        hp_ = ModelHparams::from_gguf(*file_);
        for (const LayerRange &r : ranges) {
            StageConfig cfg;
            cfg.range = r;
            cfg.n_ctx = n_ctx;
            cfg.n_threads = 2;
            cfg.load.skip = skip;
            stages_.push_back(std::make_unique<Stage>(file_, hp_, cfg));
        }
    }

    /// Runs tokens at positions [pos0, pos0+n) of sequence `seq` through all
    /// stages; returns the logits of the last token.
    std::vector<float> run(const std::vector<int32_t> &tokens, int32_t pos0, int32_t seq = 0) {
        const uint32_t n = static_cast<uint32_t>(tokens.size());
        std::vector<int32_t> pos(n), seqs(n, seq);
        std::iota(pos.begin(), pos.end(), pos0);
        const int32_t last_row = static_cast<int32_t>(n - 1);
        std::vector<float> hidden;
        const float *out = nullptr;
        for (auto &s : stages_) {
            Ubatch ub;
            ub.n_tokens = n;
            ub.pos = pos.data();
            ub.seq_id = seqs.data();
            if (s->is_first())
                ub.tokens = tokens.data();
            else
                ub.embd = hidden.data();
            ub.out_ids = &last_row;
            ub.n_outputs = 1;
            out = s->forward(ub);
            if (!s->is_last())
                hidden.assign(out, out + static_cast<size_t>(hp_.n_embd) * n);
        }
        return std::vector<float>(out, out + hp_.n_vocab);
    }

    /// Greedy continuation of `prompt` for n tokens.
    std::vector<int32_t> greedy(const std::vector<int32_t> &prompt, int n,
                                std::vector<float> *first_logits = nullptr) {
        std::vector<float> logits = run(prompt, 0);
        if (first_logits)
            *first_logits = logits;
        std::vector<int32_t> out;
        int32_t pos = static_cast<int32_t>(prompt.size());
        for (int i = 0; i < n; ++i) {
            const int32_t t = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                                   logits.begin());
            out.push_back(t);
            logits = run({t}, pos++);
        }
        return out;
    }

    const ModelHparams &hparams() const { return hp_; }
    Stage &stage(size_t i) { return *stages_[i]; }

  private:
    std::shared_ptr<const GgufFile> file_;
    ModelHparams hp_;
    std::vector<std::unique_ptr<Stage>> stages_;
};

}  // namespace colony::test
