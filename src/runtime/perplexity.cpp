#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "runtime/stage.h"
#include "util/clock.h"
#include "util/error.h"

namespace colony {

ChunkEvaluator stage_chunk_evaluator(Stage &stage) {
    if (!stage.is_first() || !stage.is_last())
        throw Error(ErrorCode::kInvalidArgument,
                    "perplexity needs a stage that holds the whole model");
    return stage_chain_chunk_evaluator({&stage}, {});
}

ChunkEvaluator stage_chain_chunk_evaluator(std::vector<Stage *> stages, HiddenHop hop) {
    if (stages.empty() || !stages.front()->is_first() || !stages.back()->is_last())
        throw Error(ErrorCode::kInvalidArgument,
                    "a stage chain must start with the embedding and end with the output head");
    for (size_t i = 1; i < stages.size(); ++i) {
        if (stages[i]->range().first != stages[i - 1]->range().last)
            throw Error(ErrorCode::kInvalidArgument, "the stage chain's ranges are not contiguous");
    }
    return [stages, hop](std::span<const int32_t> tokens, uint32_t first,
                         std::vector<float> &logits) {
        Stage &last = *stages.back();
        const uint32_t n_ubatch = stages.front()->config().n_ubatch;
        const uint32_t n_vocab = last.hparams().n_vocab;
        const uint32_t n_embd = last.hparams().n_embd;
        for (Stage *s : stages)
            s->seq_rm(0);
        logits.clear();
        std::vector<int32_t> pos(n_ubatch), seq(n_ubatch, 0), out_ids(n_ubatch);
        std::vector<float> hidden;
        for (size_t start = 0; start < tokens.size(); start += n_ubatch) {
            const auto n = static_cast<uint32_t>(std::min<size_t>(n_ubatch, tokens.size() - start));
            std::iota(pos.begin(), pos.begin() + n, static_cast<int32_t>(start));
            // rows at positions >= first; a ubatch before them still asks for
            // its last row (the engine computes at least one), dropped below
            uint32_t n_out = 0;
            for (uint32_t i = 0; i < n; ++i) {
                if (start + i >= first)
                    out_ids[n_out++] = static_cast<int32_t>(i);
            }
            const bool wanted = n_out > 0;
            if (!wanted)
                out_ids[n_out++] = static_cast<int32_t>(n - 1);
            const float *out = nullptr;
            for (Stage *s : stages) {
                Ubatch ub;
                ub.n_tokens = n;
                ub.pos = pos.data();
                ub.seq_id = seq.data();
                if (s->is_first())
                    ub.tokens = tokens.data() + start;
                else
                    ub.embd = hidden.data();
                if (s->is_last()) {
                    ub.out_ids = out_ids.data();
                    ub.n_outputs = n_out;
                }
                out = s->forward(ub);
                if (!s->is_last()) {
                    hidden.assign(out, out + size_t{n_embd} * n);
                    if (hop)
                        hop(hidden, n_embd);
                }
            }
            if (wanted)
                logits.insert(logits.end(), out, out + size_t{n_out} * n_vocab);
        }
    };
}

namespace {

void check_context(uint32_t n_ctx) {
    if (n_ctx < 4)
        throw Error(
            ErrorCode::kInvalidArgument,
            "perplexity needs a context of at least 4 tokens, not " + std::to_string(n_ctx));
}

void check_rows(const std::vector<float> &logits, size_t rows, size_t n_vocab) {
    if (logits.size() != rows * n_vocab)
        throw Error(ErrorCode::kInternal, "chunk evaluator returned " +
                                              std::to_string(logits.size()) + " logits, expected " +
                                              std::to_string(rows * n_vocab));
}

}  // namespace

std::vector<int32_t> chunk_tokens(std::span<const int32_t> text, const PerplexityOptions &opts) {
    std::vector<int32_t> chunk(text.begin(), text.end());
    if (opts.add_bos)
        chunk[0] = opts.bos;
    return chunk;
}

LogprobHeader perplexity_base_header(const std::vector<int32_t> &tokens,
                                     const PerplexityOptions &opts) {
    LogprobHeader h;
    h.n_ctx = opts.n_ctx;
    h.n_vocab = opts.n_vocab;
    h.n_chunk = perplexity_chunks(tokens.size(), opts);
    h.tokens.assign(tokens.begin(), tokens.begin() + size_t{h.n_ctx} * h.n_chunk);
    return h;
}

int32_t perplexity_chunks(size_t n_tokens, const PerplexityOptions &opts) {
    check_context(opts.n_ctx);
    if (n_tokens < 2 * size_t{opts.n_ctx}) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the text has " + std::to_string(n_tokens) + " tokens; a context of " +
                        std::to_string(opts.n_ctx) + " needs at least " +
                        std::to_string(2 * size_t{opts.n_ctx}));
    }
    const size_t n_max = n_tokens / opts.n_ctx;
    return static_cast<int32_t>(opts.n_chunks < 0 ? n_max : std::min<size_t>(opts.n_chunks, n_max));
}

PerplexityResult perplexity(const std::vector<int32_t> &tokens, const PerplexityOptions &opts,
                            const ChunkEvaluator &eval, LogprobWriter *base,
                            const std::function<void(const ChunkReport &)> &on_chunk) {
    const uint32_t n_ctx = opts.n_ctx;
    const int32_t n_chunk = perplexity_chunks(tokens.size(), opts);
    const uint32_t first = n_ctx / 2;
    const size_t n_vocab = static_cast<size_t>(opts.n_vocab);
    const size_t rows = n_ctx - 1 - first;
    std::vector<uint16_t> base_rows;
    if (base)
        base_rows.resize(rows * logprob_row_size(opts.n_vocab));

    PerplexityResult r;
    r.n_chunk = n_chunk;
    double nll = 0, nll2 = 0;
    std::vector<float> logits;
    for (int32_t c = 0; c < n_chunk; ++c) {
        const int64_t t0 = now_us();
        const std::span<const int32_t> text(tokens.data() + size_t{n_ctx} * c, n_ctx);
        eval(chunk_tokens(text, opts), first, logits);
        check_rows(logits, n_ctx - first, n_vocab);
        for (size_t i = 0; i < rows; ++i) {
            const std::span<const float> row(logits.data() + i * n_vocab, n_vocab);
            const int32_t next = text[first + i + 1];
            const double v = base ? quantize_log_probs(row, next,
                                                       std::span(base_rows).subspan(
                                                           i * logprob_row_size(opts.n_vocab),
                                                           logprob_row_size(opts.n_vocab)))
                                  : -token_log_prob(row, next).log_prob;
            nll += v;
            nll2 += v * v;
        }
        if (base)
            base->write_chunk(base_rows);
        r.n_scored += rows;
        if (on_chunk)
            on_chunk({c + 1, n_chunk, std::exp(nll / r.n_scored), (now_us() - t0) / 1e6});
    }
    r.ppl = std::exp(nll / r.n_scored);
    r.ppl_error = log_ppl_error(nll, nll2, r.n_scored) * r.ppl;
    return r;
}

KldResult kl_divergence(LogprobReader &base, const PerplexityOptions &opts,
                        const ChunkEvaluator &eval,
                        const std::function<void(int32_t chunk, const KldSums &)> &on_chunk) {
    const LogprobHeader &h = base.header();
    if (h.n_vocab != opts.n_vocab) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the base log-probabilities are of a vocabulary of " +
                        std::to_string(h.n_vocab) + " tokens, the model has " +
                        std::to_string(opts.n_vocab));
    }
    const uint32_t n_ctx = h.n_ctx, first = n_ctx / 2;
    const size_t rows = h.rows_per_chunk(), n_vocab = static_cast<size_t>(h.n_vocab);
    const size_t row_size = logprob_row_size(h.n_vocab);
    KldResult r;
    r.kld_values.reserve(rows * h.n_chunk);
    r.p_diff_values.reserve(rows * h.n_chunk);
    std::vector<float> logits;
    std::vector<uint16_t> base_rows;
    for (int32_t c = 0; c < h.n_chunk; ++c) {
        const std::span<const int32_t> text(h.tokens.data() + size_t{n_ctx} * c, n_ctx);
        eval(chunk_tokens(text, opts), first, logits);
        check_rows(logits, n_ctx - first, n_vocab);
        base.read_chunk(base_rows);
        for (size_t i = 0; i < rows; ++i) {
            const auto [kld, p_diff] =
                r.sums.add(std::span<const float>(logits.data() + i * n_vocab, n_vocab),
                           std::span<const uint16_t>(base_rows.data() + i * row_size, row_size),
                           text[first + i + 1]);
            r.kld_values.push_back(static_cast<float>(kld));
            r.p_diff_values.push_back(p_diff);
        }
        if (on_chunk)
            on_chunk(c + 1, r.sums);
    }
    return r;
}

StreamResult streaming_perplexity(Stage &stage, const std::vector<int32_t> &tokens,
                                  const StreamOptions &opts,
                                  const std::function<void(size_t block, double ppl)> &on_block) {
    if (!stage.is_first() || !stage.is_last())
        throw Error(ErrorCode::kInvalidArgument,
                    "perplexity needs a stage that holds the whole model");
    opts.window.validate(stage.config().n_ctx_seq);
    const uint32_t n_batch =
        std::min({opts.n_batch, stage.config().n_ubatch,
                  opts.window.enabled() ? opts.window.window - 1 : UINT32_MAX});
    if (n_batch == 0 || opts.block == 0)
        throw Error(ErrorCode::kInvalidArgument, "stream batch and block sizes must be positive");
    const size_t n = std::min(opts.n_tokens, tokens.size());
    const size_t n_vocab = stage.hparams().n_vocab;
    const uint32_t n_ctx = stage.config().n_ctx_seq;
    stage.seq_rm(0);
    StreamResult r;
    double nll = 0, block_nll = 0;
    size_t block_count = 0;
    int32_t n_past = 0;
    std::vector<int32_t> pos(n_batch), seq(n_batch, 0), out(n_batch);
    std::iota(out.begin(), out.end(), 0);
    for (size_t i = 0; i + 1 < n;) {
        // the last token is only scored, never fed
        auto m = static_cast<int32_t>(std::min<size_t>(n_batch, n - 1 - i));
        if (const auto sh = opts.window.shift_before(n_past, m)) {
            stage.apply_shift(0, *sh);
            n_past = sh->n_past_after();
            ++r.n_shifts;
        }
        if (static_cast<uint32_t>(n_past + m) > n_ctx) {
            m = static_cast<int32_t>(n_ctx) - n_past;
            if (m <= 0) {
                r.context_full = true;
                break;
            }
        }
        std::iota(pos.begin(), pos.begin() + m, n_past);
        Ubatch ub;
        ub.n_tokens = static_cast<uint32_t>(m);
        ub.tokens = tokens.data() + i;
        ub.pos = pos.data();
        ub.seq_id = seq.data();
        ub.out_ids = out.data();
        ub.n_outputs = static_cast<uint32_t>(m);
        const float *logits = stage.forward(ub);
        r.kv_used_max = std::max(r.kv_used_max, stage.kv_used());
        for (int32_t j = 0; j < m; ++j) {
            const double v = -token_log_prob(std::span<const float>(logits + j * n_vocab, n_vocab),
                                             tokens[i + j + 1])
                                  .log_prob;
            nll += v;
            block_nll += v;
            ++r.n_scored;
            if (++block_count == opts.block) {
                r.block_ppl.push_back(std::exp(block_nll / block_count));
                if (on_block)
                    on_block(r.block_ppl.size(), r.block_ppl.back());
                block_nll = 0;
                block_count = 0;
            }
        }
        n_past += m;
        i += static_cast<size_t>(m);
    }
    r.ppl = r.n_scored ? std::exp(nll / r.n_scored) : 0;
    return r;
}

}  // namespace colony
