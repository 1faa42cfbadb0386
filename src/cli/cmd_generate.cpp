// colony generate: single-node text generation (a cluster of one).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/cpu_args.h"
#include "cli/gpu_args.h"
#include "cli/kv_args.h"
#include "cli/layer_args.h"
#include "cli/model_source.h"
#include "cli/process_info.h"
#include "cli/spec_args.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/layer_skip.h"
#include "runtime/draft_source.h"
#include "runtime/generate.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/error.h"

namespace colony {

int cmd_generate(int argc, char **argv) {
    std::string model, prompt, cache_k = "f16", cache_v = "f16", skip_layers;
    int32_t n_predict = 128;
    CpuArgs cpu;
    GpuArgs gpu;
    uint32_t n_ctx = 4096, n_ubatch = 512;
    SamplingParams sp;
    int32_t seed = -1;
    bool chat = false, no_mmap = false, no_repack = false, raw = false, batch_invariant = false,
         ignore_eos = false, ref_attention = false;
    KvWindow window;
    SpecArgs spec;
    ArgParser p("colony generate",
                "Generate text from a prompt with the whole model on this machine.\n"
                "Text streams to stdout; a timing line goes to stderr.");
    p.add("-m", "--model", "MODEL",
          "GGUF model file, or a hub model to pull first (colony pull --help)", &model, true);
    p.add("-p", "--prompt", "TEXT", "prompt text", &prompt, true);
    p.add("-n", "--n-predict", "N", "tokens to generate (-1: until end of text or context)",
          &n_predict);
    p.add("", "--temp", "T", "temperature; 0 = greedy", &sp.temperature);
    p.add("", "--top-k", "K", "top-k sampling, 0 = off", &sp.top_k);
    p.add("", "--top-p", "P", "top-p (nucleus) sampling, 1 = off", &sp.top_p);
    p.add("", "--min-p", "P", "min-p sampling, 0 = off", &sp.min_p);
    p.add("", "--repeat-penalty", "F", "repetition penalty, 1 = off", &sp.repeat_penalty);
    p.add("", "--frequency-penalty", "F", "frequency penalty, 0 = off", &sp.frequency_penalty);
    p.add("", "--presence-penalty", "F", "presence penalty, 0 = off", &sp.presence_penalty);
    p.add("", "--repeat-last-n", "N", "tokens the penalties look back over", &sp.penalty_last_n);
    p.add("", "--seed", "S", "sampling seed, -1 = random", &seed);
    add_cpu_args(p, &cpu);
    add_gpu_args(p, &gpu);
    p.add("-c", "--ctx-size", "N", "context size in tokens (KV cache cells)", &n_ctx);
    p.add("-ub", "--ubatch-size", "N", "tokens per prefill step", &n_ubatch);
    add_cache_type_args(p, &cache_k, &cache_v);
    add_kv_window_args(p, &window);
    add_skip_layers_arg(p, &skip_layers);
    DynamicSkipArgs dyn_skip;
    add_dynamic_skip_args(p, &dyn_skip);
    add_spec_args(p, &spec);
    p.flag("", "--ref-attention",
           "ggml's reference flash attention, as every stage of a cluster runs it: the floats "
           "of `colony run`/`serve` with workers (runtime/stage.h, Invariance::kAttention)",
           &ref_attention);
    p.flag("", "--ignore-eos", "never sample end-of-generation tokens (generate all -n tokens)",
           &ignore_eos);
    p.flag("", "--chat", "wrap the prompt as a user message in the model's chat template", &chat);
    p.flag("", "--raw", "do not echo the prompt before the generated text", &raw);
    p.flag("", "--no-mmap", "copy weights into memory instead of mapping the file", &no_mmap);
    p.flag("-nr", "--no-repack", "do not repack weights for the CPU backend's faster kernels",
           &no_repack);
    p.flag("", "--batch-invariant",
           "every position gets the same floats in a prefill as in a decode (what colony "
           "serve --batch-invariant runs; slower, docs/pipeline.md)",
           &batch_invariant);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    model = resolve_model_arg(model);
    if (print_devices_if_asked(gpu))
        return 0;
    if (n_ctx == 0)
        throw Error(ErrorCode::kInvalidArgument, "--ctx-size must be positive");
    if (seed >= 0)
        sp.seed = static_cast<uint32_t>(seed);
    window.validate(n_ctx);
    const SpecParams spec_params = spec.resolve();

    std::shared_ptr<const GgufFile> file = GgufFile::open(model);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    Tokenizer tok(model);
    std::string text = prompt;
    if (chat)
        text = tok.apply_chat_template({{"user", prompt}});
    const std::vector<int32_t> tokens = tok.tokenize(text, true, chat);
    if (tokens.size() >= n_ctx) {
        throw Error(ErrorCode::kOutOfRange,
                    "context overflow: the prompt has " + std::to_string(tokens.size()) +
                        " tokens, the context holds " + std::to_string(n_ctx));
    }

    StageConfig cfg;
    cfg.range = {0, hp.n_layer};
    cfg.n_ctx = n_ctx;
    cfg.n_ubatch = n_ubatch;
    const CpuPlacement placement = resolve_cpu_args(cpu);
    cfg.n_threads = placement.n_threads;
    cfg.cpu = stage_affinity(placement);
    cfg.gpu = gpu.offload;
    cfg.type_k = parse_cache_type(cache_k);
    cfg.type_v = parse_cache_type(cache_v);
    cfg.load.use_mmap = !no_mmap;
    cfg.load.use_repack = !no_repack;
    cfg.load.skip = parse_layer_skip(skip_layers, hp.n_layer);
    cfg.dyn_skip = resolve_dynamic_skip_args(dyn_skip, hp.n_layer);
    if (batch_invariant)
        cfg.invariance = StageConfig::Invariance::kFull;
    Stage stage(file, hp, cfg);
    const std::unique_ptr<DraftSource> draft = make_draft_source(spec_params, model, tok, cfg);

    if (!raw) {
        std::fputs(text.c_str(), stdout);
        std::fflush(stdout);
    }
    GenerateOptions go;
    go.n_predict = n_predict;
    go.sampling = sp;
    go.ignore_eos = ignore_eos;
    go.kv_window = window;
    go.draft = draft.get();
    go.spec = spec_params;
    const GenerateStats st =
        generate(stage, tok, tokens, go, [](int32_t, const std::string &piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    std::string kv;
    if (window.enabled())
        kv = "KV window " + std::to_string(window.window) + " (" + std::to_string(window.sinks) +
             " sinks): " + std::to_string(st.n_kv_shifts) + " shifts, at most " +
             std::to_string(st.kv_used_max) + " cells | ";
    if (!cfg.load.skip.empty())
        kv += "skipped blocks " + cfg.load.skip.str() + " | ";
    if (cfg.dyn_skip.on())
        kv += "dynamic skip: " + std::to_string(stage.dyn_skip_skipped()) + " of " +
              std::to_string(stage.dyn_skip_evaluated()) + " block evaluations skipped | ";
    if (spec_params.enabled())
        kv += std::string("speculative (") + spec_type_name(spec_params.type) +
              "): " + std::to_string(st.spec.n_drafted) + " drafted, " +
              std::to_string(st.spec.n_accepted) + " accepted (" +
              std::to_string(static_cast<int>(st.spec.acceptance() * 100 + 0.5)) + " %) in " +
              std::to_string(st.spec.n_verifications) + " verifications | ";
    std::fprintf(stderr,
                 "colony: prompt %d tokens | prefill %.1f tok/s | TTFT %.2f ms | decode %.1f tok/s "
                 "(%d tokens, %s) | "
                 "%speak RSS %.1f MB\n",
                 st.n_prompt, st.prefill_tps(), st.ttft_us / 1000.0, st.decode_tps(),
                 st.n_generated, st.stop_reason.c_str(), kv.c_str(), peak_rss_bytes() / 1e6);
    return 0;
}

}  // namespace colony
