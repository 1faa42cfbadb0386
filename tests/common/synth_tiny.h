// Small synthetic models for tests: a real architecture's tensors and
// tokenizer with random weights (model/synth.h, `colony synth`), at sizes that
// keep a suite fast while running the full models' code paths. Link
// colony_synth to use it.
#pragma once

#include <cstdint>
#include <string>

#include "common/test_env.h"
#include "model/synth.h"

namespace colony::test {

/// Writes preset (e.g. "llama-3.2-1b") as ftype (e.g. "Q4_K_M") with n_layer
/// blocks of n_embd 256 (4 heads of 64, 2 KV heads, n_ff 768; a MoE preset 8
/// experts of n_ff 128, 2 used; phi3 LongRoPE over an original context of
/// 256; gemma3 a window of 4 in every other block) into dir and returns its path. The same seed
/// writes the same bytes.
inline std::string synth_tiny(const TempDir &dir, const std::string &preset,
                              const std::string &ftype, uint32_t n_layer = 3, uint64_t seed = 42) {
    SynthOverrides ov;
    ov.n_layer = n_layer;
    ov.n_embd = 256;
    ov.n_ff = 768;
    ov.n_head = 4;
    ov.n_head_kv = 2;
    ov.head_dim = 64;
    ov.n_ctx_train = 2048;
    const SynthHparams base = synth_find_preset(preset);
    if (base.n_expert > 0) {
        ov.n_expert = 8;
        ov.n_expert_used = 2;
        ov.n_ff_exp = 128;
    }
    SynthOptions o;
    o.hparams = synth_apply_overrides(base, ov);
    // phi3: an original context of 256, so that the tests' contexts of 512
    // take LongRoPE's long factors and an attention factor of 1.17
    if (o.hparams.rope_orig_ctx > 0)
        o.hparams.rope_orig_ctx = 256;
    if (o.hparams.n_ff_shexp > 0)  // qwen2moe's shared expert
        o.hparams.n_ff_shexp = 256;
    // gemma3: a window of 4 in blocks 0, 2, 4 ... (pattern 2), so that a
    // test prompt's last logits depend on it and windowed and global blocks alternate
    if (o.hparams.n_swa > 0) {
        o.hparams.n_swa = 4;
        o.hparams.swa_pattern = 2;
    }
    o.ftype = synth_find_ftype(ftype);
    o.seed = seed;
    o.n_threads = 2;
    o.out_path = dir.file(preset + "-" + ftype + "-" + std::to_string(n_layer) + ".gguf");
    synth_write_gguf(o);
    return o.out_path;
}

}  // namespace colony::test
