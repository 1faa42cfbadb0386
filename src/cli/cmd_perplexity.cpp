// colony perplexity: perplexity and KL-divergence of a model on a text, on
// this machine, by llama-perplexity's method and with its printout
// (runtime/perplexity.h), so the figures of a lossy option (a KV cache type,
// a quantized model) can be put beside llama.cpp's.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>

#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/cpu_args.h"
#include "cli/gpu_args.h"
#include "cli/kv_args.h"
#include "cli/layer_args.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/layer_skip.h"
#include "runtime/kv_window.h"
#include "runtime/layer_importance.h"
#include "runtime/perplexity.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/error.h"
#ifdef COLONY_HAS_PIPELINE
#include "cluster/layer_split.h"
#include "net/wire_dtype.h"
#include "pipeline/chain_evaluator.h"
#endif

namespace colony {
namespace {

struct PerplexityArgs {
    std::string model, text_file, kld_base, cache_k = "f16", cache_v = "f16", skip_layers;
    DynamicSkipArgs dyn_skip;  // streaming mode
    std::string split, wire_type = "f16";  // --split: an in-process chain of stages
    uint32_t n_ctx = 512, n_batch = 2048;
    int32_t n_chunks = -1;
    CpuPlacement cpu;  // from CpuArgs (cpu_args.h)
    GpuArgs gpu;
    uint32_t stream = 0, stream_block = 512;
    KvWindow window;
    bool kld = false, no_mmap = false, no_repack = false, layer_importance = false;
};

PerplexityArgs parse_args(int argc, char **argv, bool *help) {
    PerplexityArgs a;
    ArgParser p("colony perplexity",
                "Perplexity of a model on a text, or its KL-divergence against a base model's\n"
                "saved log-probabilities, on this machine. The method, the printout and the\n"
                "log-probability file are llama-perplexity's (the second half of each chunk of\n"
                "-c tokens is scored). Chunk perplexities go to stdout, progress to stderr.");
    p.add("-m", "--model", "PATH", "GGUF model file", &a.model, true);
    p.add("-f", "--file", "PATH", "text to evaluate (perplexity mode)", &a.text_file);
    p.add("-c", "--ctx-size", "N", "tokens per chunk", &a.n_ctx);
    p.add("-b", "--batch-size", "N", "tokens per forward pass (at most the chunk)", &a.n_batch);
    p.add("", "--chunks", "N", "chunks to evaluate, -1 = all", &a.n_chunks);
    p.add("", "--kl-divergence-base", "PATH",
          "perplexity mode: also save the log-probabilities here; with --kl-divergence: read them",
          &a.kld_base);
    p.flag("", "--kl-divergence",
           "compare with the base log-probabilities of --kl-divergence-base (their text and "
           "chunks; -f, -c and --chunks are not used)",
           &a.kld);
    p.add("", "--stream", "N",
          "streaming mode: the first N tokens of the text as one sequence, through -c cells "
          "(and the window), ubatches of -b tokens (at most 32)",
          &a.stream);
    p.add("", "--stream-block", "N", "streaming mode: print the perplexity of each N scored tokens",
          &a.stream_block);
    add_kv_window_args(p, &a.window);  // streaming mode
    add_skip_layers_arg(p, &a.skip_layers);
    add_dynamic_skip_args(p, &a.dyn_skip);  // streaming mode
    p.add("", "--split", "RANGES",
          "perplexity and KL-divergence modes: evaluate through a chain of stages of these "
          "layer ranges in this process (e.g. 0:2,2:5), with a cluster's numerics: hidden "
          "states packed to --wire-type between stages, ggml's reference attention; -ctk/-ctv "
          "may then list one type per stage (q4_0,f16)",
          &a.split);
    p.add("", "--wire-type", "TYPE",
          "with --split: the hidden states' type between stages: "
          "f32, f16, q8_0",
          &a.wire_type);
    p.flag("", "--layer-importance",
           "perplexity mode: skip each block in turn and print the KL-divergence from the "
           "whole model (with --skip-layers: from that model), least important first; the base "
           "log-probabilities go to --kl-divergence-base when given",
           &a.layer_importance);
    CpuArgs cpu;
    add_cpu_args(p, &cpu);
    add_gpu_args(p, &a.gpu);
    add_cache_type_args(p, &a.cache_k, &a.cache_v);
    p.flag("", "--no-mmap", "copy weights into memory instead of mapping the file", &a.no_mmap);
    p.flag("-nr", "--no-repack", "do not repack weights for the CPU backend's faster kernels",
           &a.no_repack);
    p.parse(argc, argv);
    *help = p.help_requested() || print_devices_if_asked(a.gpu);
    if (p.help_requested())
        std::fputs(p.usage().c_str(), stdout);
    if (*help)
        return a;
    a.cpu = resolve_cpu_args(cpu);
    if (a.kld && a.kld_base.empty())
        throw Error(ErrorCode::kInvalidArgument, "--kl-divergence needs --kl-divergence-base FILE");
    if (!a.kld && a.text_file.empty())
        throw Error(ErrorCode::kInvalidArgument, "give the text with -f FILE (or --kl-divergence)");
    if (a.n_batch == 0)
        throw Error(ErrorCode::kInvalidArgument, "--batch-size must be positive");
    if (a.stream == 0 && a.window.enabled())
        throw Error(ErrorCode::kInvalidArgument, "--kv-window needs --stream N");
    if (a.stream > 0 && (a.kld || !a.kld_base.empty()))
        throw Error(ErrorCode::kInvalidArgument,
                    "--stream does not write or read KL-divergence files");
    if (a.stream > 0)
        a.window.validate(a.n_ctx);
    if (a.split.empty() &&
        (a.cache_k.find(',') != std::string::npos || a.cache_v.find(',') != std::string::npos))
        throw Error(ErrorCode::kInvalidArgument,
                    "a list of KV cache types (one per stage) needs --split");
    if (a.dyn_skip.threshold != 0 && a.stream == 0)
        throw Error(ErrorCode::kInvalidArgument,
                    "--dynamic-skip acts on one-token decode steps: use it with --stream N");
    if (!a.split.empty() && (a.stream > 0 || a.layer_importance))
        throw Error(ErrorCode::kInvalidArgument,
                    "--split is for perplexity and KL-divergence runs (not --stream or "
                    "--layer-importance)");
#ifdef COLONY_HAS_PIPELINE
    (void)wire_dtype_from_name(a.wire_type);  // a bad name fails before the model loads
#else
    if (!a.split.empty())
        throw Error(ErrorCode::kUnsupported, "--split needs a build with the pipeline component");
#endif
    if (a.layer_importance && (a.kld || a.stream > 0))
        throw Error(ErrorCode::kInvalidArgument,
                    "--layer-importance is a perplexity-mode run (not with --kl-divergence or "
                    "--stream)");
    if (a.n_chunks == 0 || a.n_chunks < -1)
        throw Error(ErrorCode::kInvalidArgument, "--chunks must be positive or -1");
    return a;
}

std::string read_text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::kNotFound, "text file " + path + ": cannot be opened");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// A stage of the blocks `range` (default: the whole model); with no_head a
/// range ending at the last block gives hidden states (block influence).
std::unique_ptr<Stage> make_stage(
    const PerplexityArgs &a, std::shared_ptr<const GgufFile> file, const ModelHparams &hp,
    uint32_t n_ctx, const LayerSkip &skip, LayerRange range = {}, bool no_head = false,
    StageConfig::Invariance invariance = StageConfig::Invariance::kNone) {
    StageConfig cfg;
    cfg.invariance = invariance;
    cfg.range = range.empty() ? LayerRange{0, hp.n_layer} : range;
    cfg.load.no_head = no_head;
    cfg.n_ctx = n_ctx;
    cfg.n_seq_max = 1;
    cfg.n_ctx_seq = n_ctx;
    cfg.n_ubatch = std::min(a.n_batch, n_ctx);
    cfg.n_threads = a.cpu.n_threads;
    cfg.cpu = stage_affinity(a.cpu);
    cfg.gpu = a.gpu.offload;
    cfg.type_k = parse_cache_type(a.cache_k);
    cfg.type_v = parse_cache_type(a.cache_v);
    cfg.load.use_mmap = !a.no_mmap;
    cfg.load.use_repack = !a.no_repack;
    cfg.load.skip = skip;
    cfg.dyn_skip = resolve_dynamic_skip_args(a.dyn_skip, hp.n_layer);
    return std::make_unique<Stage>(std::move(file), hp, cfg);
}

/// Stage i's type of a -ctk/-ctv value: the value itself, or with --split
/// the i-th of a comma-separated list of one type per stage (a phone's
/// stage with q4_0 beside a laptop's with f16). Error(kInvalidArgument) when
/// a list's length is not the number of stages.
std::string stage_cache_type(const std::string &value, size_t i, size_t n_stages,
                             const char *option) {
    if (value.find(',') == std::string::npos)
        return value;
    std::vector<std::string> types;
    size_t start = 0;
    for (size_t comma; (comma = value.find(',', start)) != std::string::npos; start = comma + 1)
        types.push_back(value.substr(start, comma - start));
    types.push_back(value.substr(start));
    if (types.size() != n_stages)
        throw Error(ErrorCode::kInvalidArgument, std::string(option) + " names " +
                                                     std::to_string(types.size()) + " types for " +
                                                     std::to_string(n_stages) + " stages");
    return types[i];
}

/// What evaluates chunks: one stage of the whole model, or with --split a
/// chain of stages with a cluster's numerics (pipeline/chain_evaluator.h).
struct Evaluator {
    std::vector<std::unique_ptr<Stage>> stages;
    ChunkEvaluator eval;
};

Evaluator make_evaluator(const PerplexityArgs &a, const std::shared_ptr<const GgufFile> &file,
                         const ModelHparams &hp, uint32_t n_ctx, const LayerSkip &skip) {
    Evaluator e;
    if (a.split.empty()) {
        e.stages.push_back(make_stage(a, file, hp, n_ctx, skip));
        e.eval = stage_chunk_evaluator(*e.stages.front());
        return e;
    }
#ifdef COLONY_HAS_PIPELINE
    std::vector<Stage *> chain;
    const std::vector<LayerRange> ranges = parse_layer_split(a.split, hp.n_layer);
    for (size_t i = 0; i < ranges.size(); ++i) {
        PerplexityArgs per_stage = a;  // -ctk/-ctv may name one type per stage
        per_stage.cache_k = stage_cache_type(a.cache_k, i, ranges.size(), "-ctk");
        per_stage.cache_v = stage_cache_type(a.cache_v, i, ranges.size(), "-ctv");
        e.stages.push_back(make_stage(per_stage, file, hp, n_ctx, skip, ranges[i], false,
                                      StageConfig::Invariance::kAttention));
        chain.push_back(e.stages.back().get());
    }
    e.eval = stage_chain_evaluator(std::move(chain), wire_dtype_from_name(a.wire_type));
    std::fprintf(stderr, "colony perplexity: %zu stages (%s), hidden states as %s\n",
                 e.stages.size(), a.split.c_str(), a.wire_type.c_str());
#endif
    return e;
}

void print_kld_row(int32_t chunk, const KldSums &s) {
    const KldSummary k = summarize(s);
    std::printf(
        "%4d    %9.4lf ± %9.4lf    %10.5lf ± %10.5lf    %10.5lf ± %10.5lf    %6.3lf ± %6.3lf %%"
        "    %6.3lf ± %6.3lf %%\n",
        chunk, k.ppl, k.ppl_error, k.log_ppl_ratio, k.log_ppl_ratio_error, k.kld.mean, k.kld.error,
        100.0 * k.p_diff_rms, 100.0 * k.p_diff_rms_error, 100.0 * k.same_top,
        100.0 * k.same_top_error);
    std::fflush(stdout);
}

/// The distribution lines of llama-perplexity's summary: KLD values as
/// "%10.6f", probability differences as percentages "%6.3f%%".
void print_distribution(const char *name, std::vector<float> v, bool percent,
                        std::initializer_list<float> fractions) {
    std::sort(v.begin(), v.end());
    const float median =
        v.size() % 2 == 0 ? 0.5f * (v[v.size() / 2] + v[v.size() / 2 - 1]) : v[v.size() / 2];
    auto line = [&](const std::string &label, float value) {
        if (percent)
            std::printf("%s %s: %6.3lf%%\n", label.c_str(), name, 100.0 * value);
        else
            std::printf("%s %s: %10.6f\n", label.c_str(), name, value);
    };
    line("Maximum", v.back());
    char label[16];
    for (float f : fractions) {
        if (f == 0.5f) {
            line("Median ", median);
            continue;
        }
        std::snprintf(label, sizeof label, "%4.1f%%  ", 100.0 * f);
        line(label, percentile(v, f));
    }
    line("Minimum", v.front());
}

void print_kld_summary(const KldResult &r) {
    const KldSummary k = summarize(r.sums);
    std::printf("\n====== Perplexity statistics ======\n");
    std::printf("Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", k.ppl, k.ppl_error);
    std::printf("Mean PPL(base)                : %10.6lf ± %10.6lf\n", k.ppl_base,
                k.ppl_base_error);
    std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * k.log_ppl_correlation);
    std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", k.log_ppl_ratio,
                k.log_ppl_ratio_error);
    std::printf("Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", k.ppl_ratio,
                k.ppl_ratio_error);
    std::printf("Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n", k.ppl_diff,
                k.ppl_diff_error);
    std::printf("\n====== KL divergence statistics ======\n");
    std::printf("Mean    KLD: %10.6lf ± %10.6lf\n", k.kld.mean, k.kld.error);
    print_distribution("KLD", r.kld_values, false,
                       {0.999f, 0.99f, 0.95f, 0.9f, 0.5f, 0.1f, 0.05f, 0.01f, 0.001f});
    std::printf("\n====== Token probability statistics ======\n");
    std::printf("Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * k.p_diff.mean, 100.0 * k.p_diff.error);
    print_distribution(
        "Δp", r.p_diff_values, true,
        {0.999f, 0.99f, 0.95f, 0.9f, 0.75f, 0.5f, 0.25f, 0.1f, 0.05f, 0.01f, 0.001f});
    std::printf("RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * k.p_diff_rms,
                100.0 * k.p_diff_rms_error);
    std::printf("Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * k.same_top, 100.0 * k.same_top_error);
}

int run_stream(const PerplexityArgs &a, const std::shared_ptr<const GgufFile> &file,
               const ModelHparams &hp, const std::vector<int32_t> &tokens) {
    auto stage = make_stage(a, file, hp, a.n_ctx, parse_layer_skip(a.skip_layers, hp.n_layer));
    StreamOptions so;
    so.n_tokens = a.stream;
    so.n_batch = std::min<uint32_t>(a.n_batch, 32);
    if (a.dyn_skip.threshold > 0)
        so.n_batch = 1;  // the gate acts on one-token decode steps (runtime/dynamic_skip.h)
    so.block = a.stream_block;
    so.window = a.window;
    std::fprintf(stderr, "colony perplexity: streaming %zu tokens through %u cells%s\n",
                 std::min<size_t>(a.stream, tokens.size()), a.n_ctx,
                 a.window.enabled() ? (", window " + std::to_string(a.window.window) + " with " +
                                       std::to_string(a.window.sinks) + " sinks")
                                          .c_str()
                                    : "");
    const StreamResult r = streaming_perplexity(*stage, tokens, so, [](size_t block, double ppl) {
        std::printf("[%zu]%.4lf,", block, ppl);
        std::fflush(stdout);
    });
    std::printf("\nStream: PPL = %.4lf over %zu tokens | %d shifts, at most %u cells%s\n", r.ppl,
                r.n_scored, r.n_shifts, r.kv_used_max,
                r.context_full ? " | stopped: the context is full" : "");
    if (stage->config().dyn_skip.on())
        std::printf("Dynamic skip: %llu of %llu block evaluations skipped\n",
                    static_cast<unsigned long long>(stage->dyn_skip_skipped()),
                    static_cast<unsigned long long>(stage->dyn_skip_evaluated()));
    return 0;
}

int run_layer_importance(const PerplexityArgs &a, const std::shared_ptr<const GgufFile> &file,
                         const ModelHparams &hp, const std::vector<int32_t> &tokens,
                         const PerplexityOptions &opts, const LayerSkip &skip) {
    // the base file: the caller's, or one beside nothing else of ours, removed after
    const bool keep = !a.kld_base.empty();
    const std::string base_path = keep
                                      ? a.kld_base
                                      : (std::filesystem::temp_directory_path() /
                                         ("colony-importance-" + std::to_string(getpid()) + ".kld"))
                                            .string();
    std::unique_ptr<Stage> stage;  // one model in memory at a time
    auto make_eval = [&](const LayerSkip &s) {
        stage.reset();
        stage = make_stage(a, file, hp, a.n_ctx, s);
        return stage_chunk_evaluator(*stage);
    };
    std::fprintf(stderr,
                 "colony perplexity: block importance over %d chunks of %u tokens: %u runs\n",
                 perplexity_chunks(tokens.size(), opts), opts.n_ctx,
                 hp.n_layer - skip.count_in({0, hp.n_layer}) + 1);
    // ShortGPT's block influence first: one pass, the whole model only
    std::vector<double> bi;
    if (skip.empty()) {
        bi = block_influence(tokens, opts, hp.n_layer,
                             [&](LayerRange range, const LayerSkip &s, bool no_head) {
                                 return make_stage(a, file, hp, a.n_ctx, s, range, no_head);
                             });
    }
    LayerImportanceResult r;
    try {
        r = layer_importance(tokens, opts, hp.n_layer, skip, base_path, make_eval,
                             [](const BlockImportance &b) {
                                 std::fprintf(stderr, "  block %u: KLD %.6f\n", b.block, b.kld);
                             });
    } catch (...) {
        if (!keep)
            std::remove(base_path.c_str());
        throw;
    }
    if (!keep)
        std::remove(base_path.c_str());
    std::printf("Base (%s): PPL = %.4lf +/- %.5lf\n",
                skip.empty() ? "every block" : ("--skip-layers " + skip.str()).c_str(), r.base.ppl,
                r.base.ppl_error);
    std::printf(
        "\nrank  block   PPL(Q) without it       ln(PPL(Q)/PPL(base))   KL Divergence"
        "            Same top p    Block influence\n");
    for (size_t i = 0; i < r.blocks.size(); ++i) {
        const BlockImportance &b = r.blocks[i];
        std::printf(
            "%4zu  %5u   %10.4lf ± %9.4lf   %10.5lf             %10.6lf ± %9.6lf   "
            "%6.3lf %%     %s\n",
            i + 1, b.block, b.ppl, b.ppl_error, b.log_ppl_ratio, b.kld, b.kld_error,
            100.0 * b.same_top, bi.empty() ? "" : std::to_string(bi[b.block]).c_str());
    }
    std::vector<uint32_t> order;
    for (const BlockImportance &b : r.blocks)
        order.push_back(b.block);
    std::printf("\nLeast important first: %s\n", block_list(order).c_str());
    if (bi.size() >= 2) {
        std::vector<uint32_t> by_bi(bi.size());
        std::iota(by_bi.begin(), by_bi.end(), 0u);
        std::stable_sort(by_bi.begin(), by_bi.end(),
                         [&](uint32_t x, uint32_t y) { return bi[x] < bi[y]; });
        std::vector<double> kld(bi.size());
        for (const BlockImportance &b : r.blocks)
            kld[b.block] = b.kld;
        std::printf(
            "Least block influence first (ShortGPT, 1 - cos of a block's input and "
            "output): %s; rank correlation with the KLD order: %.2f\n",
            block_list(by_bi).c_str(), rank_correlation(bi, kld));
    }
    return 0;
}

}  // namespace

int cmd_perplexity(int argc, char **argv) {
    bool help = false;
    const PerplexityArgs a = parse_args(argc, argv, &help);
    if (help)
        return 0;
    std::shared_ptr<const GgufFile> file = GgufFile::open(a.model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    const Tokenizer tok(a.model);
    if (tok.adds_eos())
        throw Error(ErrorCode::kUnsupported,
                    a.model +
                        ": the tokenizer adds EOS to every text, which "
                        "the chunked method cannot score (llama-perplexity "
                        "refuses such models too)");
    PerplexityOptions opts;
    opts.add_bos = tok.adds_bos();
    opts.bos = tok.bos();
    opts.n_vocab = tok.n_vocab();
    if (static_cast<uint32_t>(opts.n_vocab) != hp.n_vocab)
        throw Error(ErrorCode::kCorrupt,
                    a.model + ": the vocabulary has " + std::to_string(opts.n_vocab) +
                        " tokens, the output head " + std::to_string(hp.n_vocab));

    const LayerSkip skip = parse_layer_skip(a.skip_layers, hp.n_layer);
    if (a.kld) {
        LogprobReader base(a.kld_base);
        const LogprobHeader &h = base.header();
        const Evaluator ev = make_evaluator(a, file, hp, h.n_ctx, skip);
        std::fprintf(stderr, "colony perplexity: KL-divergence over %d chunks of %u tokens\n",
                     h.n_chunk, h.n_ctx);
        std::printf(
            "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
            "              Δp RMS            Same top p\n");
        const KldResult r = kl_divergence(base, opts, ev.eval, print_kld_row);
        print_kld_summary(r);
        return 0;
    }

    const std::vector<int32_t> tokens = tok.tokenize(read_text(a.text_file), true, false);
    if (a.stream > 0)
        return run_stream(a, file, hp, tokens);
    opts.n_ctx = a.n_ctx;
    opts.n_chunks = a.n_chunks;
    (void)perplexity_chunks(tokens.size(), opts);  // a text too short fails before any allocation
    if (a.layer_importance)
        return run_layer_importance(a, file, hp, tokens, opts, skip);
    const Evaluator ev = make_evaluator(a, file, hp, a.n_ctx, skip);
    std::unique_ptr<LogprobWriter> writer;
    if (!a.kld_base.empty()) {
        writer = std::make_unique<LogprobWriter>(a.kld_base, perplexity_base_header(tokens, opts));
    }
    std::fprintf(stderr, "colony perplexity: %zu tokens, chunks of %u\n", tokens.size(), a.n_ctx);
    const PerplexityResult r =
        perplexity(tokens, opts, ev.eval, writer.get(), [](const ChunkReport &c) {
            std::printf("[%d]%.4lf,", c.chunk, c.ppl);
            std::fflush(stdout);
            if (c.chunk == 1)
                std::fprintf(stderr, "colony perplexity: %.2f seconds per chunk, %d chunks\n",
                             c.seconds, c.n_chunk);
        });
    if (writer)
        writer->close();
    std::printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", r.ppl, r.ppl_error);
    return 0;
}

}  // namespace colony
