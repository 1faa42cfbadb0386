#include "runtime/draft_source.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/gguf_file.h"
#include "model/hparams.h"
#include "ngram-map.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony {

std::vector<int32_t> NgramDraft::draft(int32_t, const std::vector<int32_t> &history,
                                       int32_t n_max) {
    if (history.size() < 2 || n_max <= 0)
        return {};
    const llama_tokens before(history.begin(), history.end() - 1);
    for (int32_t n = ngram_n_; n >= 2; --n) {
        const common_ngram_simple_config cfg{static_cast<uint16_t>(n),
                                             static_cast<uint16_t>(n_max)};
        std::vector<int32_t> d = common_ngram_simple_draft(cfg, before, history.back());
        if (!d.empty()) {
            if (d.size() > static_cast<size_t>(n_max))
                d.resize(static_cast<size_t>(n_max));
            return d;
        }
    }
    return {};
}

namespace {

void check_same_vocabulary(const Tokenizer &draft, const Tokenizer &target,
                           const std::string &path) {
    auto refuse = [&](const std::string &why) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the draft model " + path + " cannot draft for this model: " + why);
    };
    if (draft.n_vocab() != target.n_vocab())
        refuse("it has " + std::to_string(draft.n_vocab()) + " tokens, the target " +
               std::to_string(target.n_vocab()));
    if (draft.bos() != target.bos() || draft.adds_bos() != target.adds_bos())
        refuse("its BOS token differs");
    for (int32_t t = 0; t < target.n_vocab(); ++t) {
        if (draft.special_piece(t) != target.special_piece(t))
            refuse("token " + std::to_string(t) + " differs");
    }
}

int32_t arg_max(const float *logits, int32_t n, float *prob) {
    const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
    double sum = 0;
    for (int32_t i = 0; i < n; ++i)
        sum += std::exp(static_cast<double>(logits[i] - logits[best]));
    *prob = static_cast<float>(1.0 / sum);
    return best;
}

}  // namespace

ModelDraft::ModelDraft(const std::string &path, const Tokenizer &target, StageConfig cfg,
                       float p_min, uint32_t n_blocks)
    : p_min_(p_min) {
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    check_same_vocabulary(Tokenizer(path), target, path);
    cfg.range = {0, hp.n_layer};
    if (n_blocks > 0) {
        if (n_blocks >= hp.n_layer)
            throw Error(ErrorCode::kInvalidArgument, "--draft-layers " + std::to_string(n_blocks) +
                                                         ": the draft must run fewer "
                                                         "blocks than the model's " +
                                                         std::to_string(hp.n_layer));
        cfg.range = {0, n_blocks};
        cfg.load.early_exit_head = true;
    }
    cfg.invariance = StageConfig::Invariance::kNone;  // a draft need not be exact
    cfg.gpu = {};
    stage_ = std::make_unique<Stage>(std::move(file), hp, cfg);
    cached_.resize(cfg.n_seq_max);
}

ModelDraft::~ModelDraft() = default;

const float *ModelDraft::feed(int32_t seq_id, const int32_t *tokens, uint32_t n) {
    const uint32_t n_ubatch = stage_->config().n_ubatch;
    const float *logits = nullptr;
    std::vector<int32_t> &cached = cached_.at(static_cast<size_t>(seq_id));
    std::vector<int32_t> pos(n_ubatch), seq(n_ubatch, seq_id);
    for (uint32_t i = 0; i < n; i += n_ubatch) {
        const uint32_t m = std::min(n_ubatch, n - i);
        std::iota(pos.begin(), pos.begin() + m, static_cast<int32_t>(cached.size()));
        const int32_t last_row = static_cast<int32_t>(m - 1);
        Ubatch ub;
        ub.n_tokens = m;
        ub.tokens = tokens + i;
        ub.pos = pos.data();
        ub.seq_id = seq.data();
        ub.out_ids = &last_row;
        ub.n_outputs = 1;
        logits = stage_->forward(ub);
        cached.insert(cached.end(), tokens + i, tokens + i + m);
    }
    return logits;
}

std::vector<int32_t> ModelDraft::draft(int32_t seq, const std::vector<int32_t> &history,
                                       int32_t n_max) {
    const int64_t room =
        static_cast<int64_t>(stage_->config().n_ctx_seq) - static_cast<int64_t>(history.size()) - 1;
    n_max = static_cast<int32_t>(std::min<int64_t>(n_max, room));
    if (n_max <= 0 || history.empty())
        return {};
    // keep the KV of the shared prefix; the last token is fed again for its logits
    std::vector<int32_t> &cached = cached_.at(static_cast<size_t>(seq));
    size_t keep = 0;
    while (keep < cached.size() && keep + 1 < history.size() && cached[keep] == history[keep])
        ++keep;
    if (keep < cached.size()) {
        stage_->seq_rm(seq, static_cast<int32_t>(keep), -1);
        cached.resize(keep);
    }
    const float *logits =
        feed(seq, history.data() + keep, static_cast<uint32_t>(history.size() - keep));
    const int32_t n_vocab = static_cast<int32_t>(stage_->hparams().n_vocab);
    std::vector<int32_t> out;
    for (;;) {
        float prob = 0;
        const int32_t t = arg_max(logits, n_vocab, &prob);
        if (prob < p_min_)
            break;
        out.push_back(t);
        if (static_cast<int32_t>(out.size()) >= n_max)
            break;
        logits = feed(seq, &t, 1);
    }
    return out;
}

std::unique_ptr<DraftSource> make_draft_source(const SpecParams &params,
                                               const std::string &target_path,
                                               const Tokenizer &target,
                                               const StageConfig &target_cfg) {
    params.validate();
    switch (params.type) {
        case SpecType::kNone:
            return nullptr;
        case SpecType::kNgram:
            return std::make_unique<NgramDraft>(params.ngram_n);
        case SpecType::kDraftModel: {
            StageConfig cfg = target_cfg;
            cfg.load.skip = {};  // the target's --skip-layers name the target's blocks
            return std::make_unique<ModelDraft>(params.draft_model, target, cfg, params.p_min);
        }
        case SpecType::kSkip: {
            uint32_t n = static_cast<uint32_t>(params.draft_layers);
            if (n == 0) {
                const uint32_t n_layer =
                    ModelHparams::from_gguf(*GgufFile::open(target_path)).n_layer;
                n = std::max<uint32_t>(1, n_layer / 2);
            }
            return std::make_unique<ModelDraft>(target_path, target, target_cfg, params.p_min, n);
        }
    }
    return nullptr;
}

}  // namespace colony
