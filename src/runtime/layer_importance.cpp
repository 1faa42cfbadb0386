#include "runtime/layer_importance.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/logprob_file.h"
#include "runtime/stage.h"
#include "util/error.h"

namespace colony {

LayerImportanceResult layer_importance(
    const std::vector<int32_t> &tokens, const PerplexityOptions &opts, uint32_t n_layer,
    const LayerSkip &skip, const std::string &base_path, const SkipEvaluatorFactory &make_eval,
    const std::function<void(const BlockImportance &)> &on_block) {
    LayerImportanceResult result;
    {
        LogprobWriter writer(base_path, perplexity_base_header(tokens, opts));
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

namespace {

/// Runs `tokens` (one chunk) through the chain: hidden[0] gets the
/// embeddings, hidden[i + 1] block i's output, each [n_embd * n].
void run_chain(std::vector<std::unique_ptr<Stage>> &chain, const std::vector<int32_t> &tokens,
               uint32_t n_embd, std::vector<std::vector<float>> &hidden) {
    const auto n = static_cast<uint32_t>(tokens.size());
    for (auto &s : chain)
        s->seq_rm(0);
    for (auto &h : hidden)
        h.assign(size_t{n_embd} * n, 0.0f);
    const uint32_t n_ubatch = chain.front()->config().n_ubatch;
    std::vector<int32_t> pos(n_ubatch), seq(n_ubatch, 0);
    for (uint32_t start = 0; start < n; start += n_ubatch) {
        const uint32_t m = std::min(n_ubatch, n - start);
        std::iota(pos.begin(), pos.begin() + m, static_cast<int32_t>(start));
        for (size_t i = 0; i < chain.size(); ++i) {
            Ubatch ub;
            ub.n_tokens = m;
            ub.pos = pos.data();
            ub.seq_id = seq.data();
            if (chain[i]->is_first())
                ub.tokens = tokens.data() + start;
            else
                ub.embd = hidden[i - 1].data() + size_t{n_embd} * start;  // block i-1's input
            const float *out = chain[i]->forward(ub);
            std::copy(out, out + size_t{n_embd} * m, hidden[i].data() + size_t{n_embd} * start);
        }
    }
}

}  // namespace

std::vector<double> block_influence(const std::vector<int32_t> &tokens,
                                    const PerplexityOptions &opts, uint32_t n_layer,
                                    const StageFactory &make_stage) {
    const int32_t n_chunk = perplexity_chunks(tokens.size(), opts);
    // chain[0]: the embeddings alone (block 0 skipped); chain[i + 1]: block i
    std::vector<std::unique_ptr<Stage>> chain;
    chain.push_back(make_stage({0, 1}, LayerSkip{{0}}, true));
    for (uint32_t il = 0; il < n_layer; ++il)
        chain.push_back(make_stage({il, il + 1}, {}, true));
    for (const auto &s : chain) {
        if (s->is_last())
            throw Error(ErrorCode::kInternal, "block influence needs stages without a head");
    }
    // hidden[0] = x_0 (embeddings) ... hidden[n_layer] = x_n_layer; block il
    // reads hidden[il] and writes hidden[il + 1] (run_chain's indices shift
    // by the embedding stage: chain[i] writes hidden[i])
    const uint32_t n_embd = chain.front()->hparams().n_embd;
    std::vector<std::vector<float>> hidden(chain.size());
    std::vector<double> sum_cos(n_layer, 0.0);
    size_t count = 0;
    for (int32_t c = 0; c < n_chunk; ++c) {
        const std::vector<int32_t> chunk = chunk_tokens(
            std::span<const int32_t>(tokens).subspan(size_t{opts.n_ctx} * c, opts.n_ctx), opts);
        // chain[0] and chain[1] both read tokens; chain[i >= 2] reads the
        // output of chain[i - 1], which run_chain passes as hidden[i - 1]
        run_chain(chain, chunk, n_embd, hidden);
        for (uint32_t t = 0; t < opts.n_ctx; ++t) {
            for (uint32_t il = 0; il < n_layer; ++il) {
                const float *a = hidden[il].data() + size_t{n_embd} * t;
                const float *b = hidden[il + 1].data() + size_t{n_embd} * t;
                double ab = 0, aa = 0, bb = 0;
                for (uint32_t e = 0; e < n_embd; ++e) {
                    ab += double(a[e]) * b[e];
                    aa += double(a[e]) * a[e];
                    bb += double(b[e]) * b[e];
                }
                sum_cos[il] += aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 1.0;
            }
            ++count;
        }
    }
    std::vector<double> bi(n_layer);
    for (uint32_t il = 0; il < n_layer; ++il)
        bi[il] = 1.0 - sum_cos[il] / static_cast<double>(std::max<size_t>(count, 1));
    return bi;
}

double rank_correlation(const std::vector<double> &a, const std::vector<double> &b) {
    const size_t n = a.size();
    if (n < 2 || b.size() != n)
        throw Error(ErrorCode::kInvalidArgument, "rank correlation needs two lists of n >= 2");
    auto ranks = [n](const std::vector<double> &v) {
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t x, size_t y) { return v[x] < v[y]; });
        std::vector<double> r(n);
        for (size_t i = 0; i < n; ++i)
            r[order[i]] = static_cast<double>(i);
        return r;
    };
    const std::vector<double> ra = ranks(a), rb = ranks(b);
    double d2 = 0;
    for (size_t i = 0; i < n; ++i)
        d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
    const double nn = static_cast<double>(n);
    return 1.0 - 6.0 * d2 / (nn * (nn * nn - 1.0));
}

}  // namespace colony
