// colony synth: writes a synthetic GGUF model with the shapes of a known model
// (presets in model/synth.cpp), a real tokenizer and random weights.
#include "cli/cmd_synth.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "cli/args.h"
#include "model/synth.h"
#include "util/error.h"
#include "util/text_file.h"

namespace colony {

namespace {

using Clock = std::chrono::steady_clock;

std::string help_epilogue() {
    std::string s = "\npresets:\n";
    for (const SynthPreset &p : synth_presets()) {
        char line[256];
        std::snprintf(line, sizeof(line), "  %-14s %s\n", p.name, p.description);
        s += line;
    }
    s += "\ntypes (--type): ";
    for (const SynthFtype &f : synth_ftypes()) {
        s += f.name;
        s += " ";
    }
    s += "\n  1-D tensors stay F32; K-quant _S/_M mixtures and row-size fallbacks follow\n"
         "  llama-quantize (e.g. Q4_K_M: output Q6_K, attn_v/ffn_down Q6_K on some layers).\n"
         "\nweights: deterministic from --seed and each tensor's name (splitmix64 counter\n"
         "  PRNG, approximately normal): matrices N(0, 1/row length), norms 1 + N(0, 0.02^2),\n"
         "  biases N(0, 0.02^2). The same options give a byte-identical\n"
         "  file (with the same build).\n"
         "\nexample (a tiny Qwen3 for tests):\n"
         "  colony synth --preset qwen3-0.6b -o tiny.gguf --type Q4_K_M \\\n"
         "      --layers 4 --embd 256 --ff 768 --heads 4 --kv-heads 2\n";
    return s;
}

uint64_t parse_seed(const std::string &v) {
    size_t used = 0;
    unsigned long long x = 0;
    try {
        x = std::stoull(v, &used, 0);
    } catch (const std::exception &) {
        used = 0;
    }
    if (v.empty() || used != v.size() || v[0] == '-') {
        throw Error(ErrorCode::kInvalidArgument,
                    "option --seed needs an unsigned integer, got '" + v + "'");
    }
    return x;
}

std::optional<uint32_t> nonzero(uint32_t v) {
    return v == 0 ? std::nullopt : std::optional<uint32_t>(v);
}

// Progress line on stderr for files of 64 MiB and more: rewritten in place on a
// terminal (at most 4 times a second), one line every 10 s otherwise.
class ProgressPrinter {
  public:
    explicit ProgressPrinter(bool enabled) : enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0) {}

    void operator()(const SynthProgress &p) {
        if (!enabled_ || p.bytes_total < (uint64_t{64} << 20)) {
            return;
        }
        const auto now = Clock::now();
        const bool last = p.bytes_written == p.bytes_total;
        if (!last &&
            now - last_ < (tty_ ? std::chrono::milliseconds(250) : std::chrono::seconds(10))) {
            return;
        }
        last_ = now;
        std::fprintf(
            stderr, "%scolony synth: tensor %zu/%zu, %llu/%llu MiB%s", tty_ ? "\r" : "",
            p.i_tensor + 1, p.n_tensors, static_cast<unsigned long long>(p.bytes_written >> 20),
            static_cast<unsigned long long>(p.bytes_total >> 20), tty_ && !last ? "" : "\n");
        std::fflush(stderr);
    }

  private:
    bool enabled_;
    bool tty_;
    Clock::time_point last_{};
};

int run_synth(int argc, char **argv) {
    std::string preset, out, type = "F16", vocab, seed_text = "1";
    uint32_t layers = 0, embd = 0, heads = 0, kv_heads = 0, ff = 0, head_dim = 0, ctx = 0;
    uint32_t experts = 0, experts_used = 0, ff_exp = 0;
    int32_t threads =
        static_cast<int32_t>(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    bool quiet = false;
    ArgParser p("colony synth",
                "Write a GGUF model with random weights, the shapes of a known model and its real\n"
                "tokenizer (all tokenizer.* keys of a vocab GGUF), quantized to --type.");
    p.add("", "--preset", "NAME", "model shapes to copy (see presets below)", &preset, true);
    p.add("-o", "--output", "PATH", "GGUF file to write (replaced if it exists)", &out, true);
    p.add("", "--type", "TYPE", "file type, as llama-quantize names it (see types below)", &type);
    p.add("", "--seed", "S", "seed of the weights (unsigned 64-bit)", &seed_text);
    p.add("", "--vocab", "PATH",
          "vocab GGUF whose tokenizer is copied (default: <llama.cpp>/models/ggml-vocab-qwen2.gguf "
          "for qwen presets, ggml-vocab-llama-bpe.gguf for llama)",
          &vocab);
    std::string chat_template_file;
    p.add("", "--chat-template-file", "PATH",
          "Jinja chat template written as tokenizer.chat_template (replaces the vocab's; "
          "e.g. <llama.cpp>/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja)",
          &chat_template_file);
    p.add("", "--layers", "N", "override: transformer blocks (0 = the preset's)", &layers);
    p.add("", "--embd", "N", "override: hidden size n_embd (0 = the preset's)", &embd);
    p.add("", "--heads", "N", "override: query heads (0 = the preset's)", &heads);
    p.add("", "--kv-heads", "N", "override: key/value heads (0 = the preset's)", &kv_heads);
    p.add("", "--ff", "N", "override: feed-forward size n_ff (0 = the preset's)", &ff);
    p.add("", "--head-dim", "N",
          "override: per-head size (0 = the preset's, or n_embd/heads when --embd or --heads is "
          "given)",
          &head_dim);
    p.add("", "--ctx", "N",
          "override: training context length written to the file (0 = the preset's)", &ctx);
    p.add("", "--experts", "N",
          "override, MoE presets: routed experts per block (0 = the preset's)", &experts);
    p.add("", "--experts-used", "N", "override, MoE presets: experts per token (0 = the preset's)",
          &experts_used);
    p.add("", "--ff-exp", "N",
          "override, MoE presets: an expert's feed-forward size (0 = the "
          "preset's)",
          &ff_exp);
    p.add("-t", "--threads", "N", "threads generating and quantizing weights", &threads);
    p.flag("-q", "--quiet", "no progress or summary output", &quiet);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s%s", p.usage().c_str(), help_epilogue().c_str());
            return 0;
        }
    }
    p.parse(argc, argv);

    SynthOverrides ov;
    ov.n_layer = nonzero(layers);
    ov.n_embd = nonzero(embd);
    ov.n_head = nonzero(heads);
    ov.n_head_kv = nonzero(kv_heads);
    ov.n_ff = nonzero(ff);
    ov.head_dim = nonzero(head_dim);
    ov.n_ctx_train = nonzero(ctx);
    ov.n_expert = nonzero(experts);
    ov.n_expert_used = nonzero(experts_used);
    ov.n_ff_exp = nonzero(ff_exp);
    if (threads < 1) {
        throw Error(ErrorCode::kInvalidArgument, "option --threads must be >= 1");
    }

    SynthOptions opts;
    opts.hparams = synth_apply_overrides(synth_find_preset(preset), ov);
    opts.ftype = synth_find_ftype(type);
    opts.seed = parse_seed(seed_text);
    opts.vocab_path = vocab;
    if (!chat_template_file.empty())
        opts.chat_template = read_text_file(chat_template_file);
    opts.out_path = out;
    opts.n_threads = threads;
    ProgressPrinter progress(!quiet);
    opts.on_progress = [&progress](const SynthProgress &pr) { progress(pr); };

    const auto t0 = Clock::now();
    const SynthResult r = synth_write_gguf(opts);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!quiet) {
        const SynthHparams &hp = opts.hparams;
        std::fprintf(
            stderr,
            "colony synth: wrote %s: %s (%s, %u layers, n_embd %u, n_ff %u, heads %u/%u x %u, "
            "n_vocab %u), %s, %zu tensors, %.1f MiB in %.1f s\n",
            out.c_str(), hp.preset.c_str(), synth_arch_name(hp.arch), hp.n_layer, hp.n_embd,
            hp.n_ff, hp.n_head, hp.n_head_kv, hp.head_dim, r.n_vocab, opts.ftype.name, r.n_tensors,
            static_cast<double>(r.n_bytes) / (1 << 20), secs);
    }
    return 0;
}

}  // namespace

int cmd_synth(int argc, char **argv) {
    try {
        return run_synth(argc, argv);
    } catch (const Error &e) {
        std::fprintf(stderr, "colony synth: error: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "colony synth: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace colony
