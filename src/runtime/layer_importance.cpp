#include "runtime/layer_importance.h"

#include <algorithm>

#include "runtime/logprob_file.h"

namespace colony {

LayerImportanceResult layer_importance(
    const std::vector<int32_t> &tokens, const PerplexityOptions &opts, uint32_t n_layer,
    const LayerSkip &skip, const std::string &base_path, const SkipEvaluatorFactory &make_eval,
    const std::function<void(const BlockImportance &)> &on_block) {
    LayerImportanceResult result;
    {
        const int32_t n_chunk = perplexity_chunks(tokens.size(), opts);
        LogprobHeader h;
        h.n_ctx = opts.n_ctx;
        h.n_vocab = opts.n_vocab;
        h.n_chunk = n_chunk;
        h.tokens.assign(tokens.begin(), tokens.begin() + size_t{h.n_ctx} * h.n_chunk);
        LogprobWriter writer(base_path, h);
        result.base = perplexity(tokens, opts, make_eval(skip), &writer, {});
        writer.close();
    }
    for (uint32_t il = 0; il < n_layer; ++il) {
        if (skip.contains(il))
            continue;
        LogprobReader base(base_path);
        const KldResult k = kl_divergence(base, opts, make_eval(skip.with(il)), {});
        const KldSummary s = summarize(k.sums);
        BlockImportance b;
        b.block = il;
        b.ppl = s.ppl;
        b.ppl_error = s.ppl_error;
        b.log_ppl_ratio = s.log_ppl_ratio;
        b.kld = s.kld.mean;
        b.kld_error = s.kld.error;
        b.same_top = s.same_top;
        if (on_block)
            on_block(b);
        result.blocks.push_back(b);
    }
    std::stable_sort(
        result.blocks.begin(), result.blocks.end(),
        [](const BlockImportance &a, const BlockImportance &b) { return a.kld < b.kld; });
    return result;
}

LayerSkip least_important(const LayerImportanceResult &result, const LayerSkip &skip, size_t n) {
    LayerSkip out = skip;
    for (size_t i = 0; i < n && i < result.blocks.size(); ++i)
        out = out.with(result.blocks[i].block);
    return out;
}

}  // namespace colony
