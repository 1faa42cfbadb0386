// Sequences of data-plane frames into the stages of a pipeline, handled as a
// worker's data plane handles them (worker_data.cpp: on_activations,
// on_release, on_shift): decode, check against the stage's plan (epoch, shapes,
// vocabulary, context), run through the stage (run_stage_step: the forward
// pass, and on the last stage the samplers with the grammars, logprobs and
// penalties the message asks for), and release KV cells. The model is a
// 2-layer tiny llama (tests/fuzz/data) split into stage 0 [0, 1) that takes
// token ids and stage 1 [1, 2) that takes hidden states and samples; stage 0's
// output is fed to stage 1 as the next worker would receive it.
//
// Input: frames, each a u16 length (little-endian) then that many bytes. Both
// stages are reset before each input, so an input is a whole session.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "ggml.h"
#include "llama.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "net/wire.h"
#include "pipeline/seq_samplers.h"
#include "pipeline/stage_step.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/log.h"

namespace {

using namespace colony;

constexpr uint32_t kSeqMax = 4, kCtxSeq = 48, kUbatch = 16;

struct Pipeline {
    std::shared_ptr<const GgufFile> file;
    ModelHparams hp;
    std::unique_ptr<Tokenizer> vocab;
    std::unique_ptr<Stage> stages[2];
};
Pipeline *g_pipe = nullptr;

void quiet(ggml_log_level, const char *, void *) {}

std::unique_ptr<Stage> make_stage(uint32_t first, uint32_t last) {
    StageConfig cfg;
    cfg.range = LayerRange{first, last};
    cfg.n_seq_max = kSeqMax;
    cfg.n_ctx_seq = kCtxSeq;
    cfg.n_ctx = kCtxSeq * kSeqMax;
    cfg.n_ubatch = kUbatch;
    cfg.n_threads = 1;
    cfg.load.use_repack = false;
    return std::make_unique<Stage>(g_pipe->file, g_pipe->hp, cfg);
}

/// What a worker's data plane does with one frame for stage k.
void handle(int k, const WireMessage &msg, SequenceSamplers &samplers) {
    Stage &stage = *g_pipe->stages[k];
    if (const auto *rel = std::get_if<WireSeqRelease>(&msg.body)) {
        if (rel->plan_epoch != 1)
            return;  // the worker's fence drops another plan's release
        for (uint32_t s = 0; s < kSeqMax; ++s) {
            if (rel->seq_id >= 0 && static_cast<uint32_t>(rel->seq_id) != s)
                continue;
            stage.seq_rm(static_cast<int32_t>(s), rel->p0);
            if (rel->p0 == 0 && k == 1)
                samplers.release(static_cast<int32_t>(s));
        }
        return;
    }
    if (const auto *sh = std::get_if<WireSeqShift>(&msg.body)) {
        if (sh->plan_epoch != 1)
            return;  // the worker's fence drops another plan's shift
        if (sh->seq_id >= static_cast<int32_t>(kSeqMax) ||
            sh->n_past > static_cast<int32_t>(kCtxSeq))
            return;  // the worker refuses these (StageHost::shift, WorkerData::on_shift)
        stage.seq_rm(sh->seq_id, sh->p0, sh->p0 + sh->n_discard);
        stage.seq_add(sh->seq_id, sh->p0 + sh->n_discard, sh->n_past, -sh->n_discard);
        if (k == 0)
            fuzz::expect_clean("stage 1", [&] { handle(1, msg, samplers); });
        return;
    }
    const auto *act = std::get_if<WireActivations>(&msg.body);
    if (!act)
        return;  // a data plane drops other types
    const WirePlanShape plan{
        1, k == 0 ? 0u : g_pipe->hp.n_embd, kCtxSeq, g_pipe->hp.n_vocab, kUbatch, kSeqMax};
    wire_check_activations(*act, plan);
    StageOutput out = run_stage_step(stage, *act, WIRE_DTYPE_F16, samplers);
    if (k == 0) {
        WireMessage next = msg;
        next.body = std::get<WireActivations>(std::move(out));
        fuzz::expect_clean("stage 1", [&] { handle(1, next, samplers); });
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    ggml_log_set(quiet, nullptr);
    llama_log_set(quiet, nullptr);
    set_log_level(LogLevel::kQuiet);
    const char *model = std::getenv("COLONY_FUZZ_MODEL");
    if (!model) {
        std::fprintf(
            stderr,
            "fuzz_stage_frames: set COLONY_FUZZ_MODEL to tests/fuzz/data/tiny-llama-2l-f32.gguf\n");
        std::exit(2);
    }
    g_pipe = new Pipeline;  // lives for the process (libFuzzer never returns)
    g_pipe->file = GgufFile::open(model);
    g_pipe->hp = ModelHparams::from_gguf(*g_pipe->file);
    g_pipe->vocab = std::make_unique<Tokenizer>(model);
    g_pipe->stages[0] = make_stage(0, 1);
    g_pipe->stages[1] = make_stage(1, 2);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (auto &stage : g_pipe->stages)
        for (uint32_t s = 0; s < kSeqMax; ++s)
            stage->seq_rm(static_cast<int32_t>(s));
    SequenceSamplers samplers(static_cast<int32_t>(g_pipe->hp.n_vocab),
                              [] { return g_pipe->vocab->vocab(); });
    WireLimits limits;
    limits.max_tokens = kUbatch;
    limits.max_string_bytes = 512;
    size_t at = 0;
    while (at + 2 <= size) {
        const size_t n = data[at] | (size_t(data[at + 1]) << 8);
        at += 2;
        if (n > size - at)
            break;
        const std::span<const uint8_t> frame(data + at, n);
        at += n;
        fuzz::expect_clean("stage frame", [&] {
            const WireMessage msg = wire_decode(frame, limits);
            const auto *act = std::get_if<WireActivations>(&msg.body);
            handle(act && act->n_embd > 0 ? 1 : 0, msg, samplers);
        });
    }
    return 0;
}
