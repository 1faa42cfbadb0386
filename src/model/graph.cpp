#include "model/graph.h"

#include <cmath>
#include <vector>

#include "model/kv_cache.h"
#include "model/weights.h"

namespace colony {
namespace {

// llama_mul_mat_hadamard (src/llama-impl.h): x in blocks of n times the
// rotation, with ggml's hint that picks the fast transform on the CPU.
ggml_tensor *mul_hadamard(ggml_context *ctx, ggml_tensor *x, ggml_tensor *rot) {
    const int64_t n = rot->ne[0];
    ggml_tensor *r = ggml_is_contiguous(x) ? ggml_reshape_2d(ctx, x, n, ggml_nelements(x) / n)
                                           : ggml_cont_2d(ctx, x, n, ggml_nelements(x) / n);
    r = ggml_mul_mat(ctx, rot, r);
    ggml_mul_mat_set_hint(r, GGML_HINT_SRC0_IS_HADAMARD);
    return ggml_reshape_4d(ctx, r, x->ne[0], x->ne[1], x->ne[2], x->ne[3]);
}

ggml_tensor *rotation_input(ggml_context *ctx, uint32_t n, const char *name) {
    if (n == 0)
        return nullptr;
    ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n);
    ggml_set_input(t);
    ggml_set_name(t, name);
    return t;
}

struct Builder {
    const ModelHparams &hp;
    const StageWeights &w;
    const KvCache &kv;
    const GraphShape &shape;
    StageGraph &g;
    ggml_context *ctx;

    // W x, or lr_b (lr_a x) for a matrix stored as low-rank factors
    // (StageWeights::low_rank_input).
    ggml_tensor *mm(ggml_tensor *weight, ggml_tensor *x) const {
        if (ggml_tensor *a = w.low_rank_input(weight))
            x = ggml_mul_mat(ctx, a, x);
        return ggml_mul_mat(ctx, weight, x);
    }

    // RMS norm then scale by the weight (build_norm, LLM_NORM_RMS).
    ggml_tensor *rms_norm(ggml_tensor *x, ggml_tensor *weight) const {
        x = ggml_rms_norm(ctx, x, hp.rms_eps);
        return ggml_mul(ctx, x, weight);
    }

    ggml_tensor *rope(ggml_tensor *x, uint32_t il) const {
        return ggml_rope_ext(ctx, x, g.inp_pos, w.rope_freqs, static_cast<int>(hp.n_rot),
                             static_cast<int>(hp.rope_type), static_cast<int>(hp.n_ctx_orig),
                             hp.rope_base(il), hp.rope_scale(il), hp.rope_ext_factor,
                             hp.rope_attn_factor, hp.rope_beta_fast, hp.rope_beta_slow);
    }

    // Self-attention of block il on normalized input cur [n_embd, n_tokens];
    // writes K/V of this ubatch into the cache and attends over n_kv cells.
    // kv_only: only the K/V writes (a dynamically skipped block); nullptr.
    ggml_tensor *attention(uint32_t il, ggml_tensor *cur, bool kv_only = false) const {
        const LayerWeights &l = w.layer(il);
        const int64_t n_tokens = shape.n_tokens;
        const int64_t hd = hp.head_dim_k;

        ggml_tensor *q, *k, *v;
        if (l.wqkv) {
            // fused (phi3): views of one product, as llama.cpp's build_qkv
            ggml_tensor *qkv = mm(l.wqkv, cur);
            if (l.bqkv)
                qkv = ggml_add(ctx, qkv, l.bqkv);
            const size_t row = ggml_row_size(qkv->type, hd);
            q = ggml_view_3d(ctx, qkv, hd, hp.n_head, n_tokens, row, qkv->nb[1], 0);
            k = ggml_view_3d(ctx, qkv, hd, hp.n_head_kv, n_tokens, row, qkv->nb[1],
                             ggml_row_size(qkv->type, hp.n_embd_q()));
            v = ggml_view_3d(ctx, qkv, hd, hp.n_head_kv, n_tokens, row, qkv->nb[1],
                             ggml_row_size(qkv->type, hp.n_embd_q() + hp.n_embd_k_gqa()));
        } else {
            q = mm(l.wq, cur);
            if (l.bq)
                q = ggml_add(ctx, q, l.bq);
            k = mm(l.wk, cur);
            if (l.bk)
                k = ggml_add(ctx, k, l.bk);
            v = mm(l.wv, cur);
            if (l.bv)
                v = ggml_add(ctx, v, l.bv);
            q = ggml_reshape_3d(ctx, q, hd, hp.n_head, n_tokens);     // [hd, n_head, n_tokens]
            k = ggml_reshape_3d(ctx, k, hd, hp.n_head_kv, n_tokens);  // [hd, n_head_kv, n_tokens]
            v = ggml_reshape_3d(ctx, v, hd, hp.n_head_kv, n_tokens);
        }
        if (l.q_norm)
            q = rms_norm(q, l.q_norm);
        q = rope(q, il);
        if (l.k_norm)
            k = rms_norm(k, l.k_norm);
        k = rope(k, il);
        // phi3 and gemma3 scale Q before attention and attend with scale 1
        // (src/models/phi3.cpp, gemma3.cpp)
        const bool q_scaled = hp.arch == Arch::kPhi3 || hp.attn_scale > 0.0f;
        if (q_scaled)
            q = ggml_scale(
                ctx, q,
                hp.attn_scale > 0.0f ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd)));

        if (g.inp_k_rot) {  // a quantized K cache (llama-graph.cpp, build_attn)
            q = mul_hadamard(ctx, q, g.inp_k_rot);
            k = mul_hadamard(ctx, k, g.inp_k_rot);
        }
        if (g.inp_v_rot)
            v = mul_hadamard(ctx, v, g.inp_v_rot);
        // same expansion order as llama.cpp, then the cache stores
        if (!kv_only)
            ggml_build_forward_expand(g.gf, q);
        ggml_build_forward_expand(g.gf, v);
        ggml_build_forward_expand(g.gf, k);
        ggml_tensor *k_cache = kv.k(il);
        ggml_tensor *v_cache = kv.v(il);
        ggml_tensor *k_rows = ggml_view_2d(ctx, k, hd * hp.n_head_kv, n_tokens, k->nb[2], 0);
        ggml_tensor *v_rows = ggml_view_2d(ctx, v, hd * hp.n_head_kv, n_tokens, v->nb[2], 0);
        ggml_build_forward_expand(g.gf, ggml_set_rows(ctx, k_cache, k_rows, g.inp_k_idxs));
        ggml_build_forward_expand(g.gf, ggml_set_rows(ctx, v_cache, v_rows, g.inp_k_idxs));
        if (kv_only)
            return nullptr;

        const int64_t n_kv = shape.n_kv;
        ggml_tensor *kc = ggml_view_4d(
            ctx, k_cache, hd, hp.n_head_kv, n_kv, 1, ggml_row_size(k_cache->type, hd),
            k_cache->nb[1], ggml_row_size(k_cache->type, hp.n_embd_k_gqa() * kv.size()), 0);
        ggml_tensor *vc = ggml_view_4d(
            ctx, v_cache, hd, hp.n_head_kv, n_kv, 1, ggml_row_size(v_cache->type, hd),
            v_cache->nb[1], ggml_row_size(v_cache->type, hp.n_embd_v_gqa() * kv.size()), 0);
        ggml_tensor *q4 =
            ggml_view_4d(ctx, q, q->ne[0], q->ne[1], q->ne[2], 1, q->nb[1], q->nb[2], q->nb[3], 0);
        q4 = ggml_permute(ctx, q4, 0, 2, 1, 3);  // [hd, n_tokens, n_head, 1]
        kc = ggml_permute(ctx, kc, 0, 2, 1, 3);  // [hd, n_kv, n_head_kv, 1]
        vc = ggml_permute(ctx, vc, 0, 2, 1, 3);

        const float kq_scale = q_scaled ? 1.0f : 1.0f / std::sqrt(static_cast<float>(hd));
        ggml_tensor *mask = hp.is_swa(il) ? g.inp_mask_swa : g.inp_mask;
        ggml_tensor *att = ggml_flash_attn_ext(ctx, q4, kc, vc, mask, kq_scale, 0.0f, 0.0f);
        ggml_flash_attn_ext_add_sinks(att, l.attn_sinks);  // gpt-oss; nullptr: none
        ggml_flash_attn_ext_set_n_kv_max(att, 0);
        ggml_prec_set_acc(att, GGML_PREC_F32);
        att = ggml_reshape_2d(ctx, att, att->ne[0] * att->ne[1],
                              att->ne[2] * att->ne[3]);  // [n_embd_q, n_tokens]
        if (g.inp_v_rot)                                 // rotate back (H H = I)
            att = mul_hadamard(ctx, att, g.inp_v_rot);

        ggml_tensor *out = mm(l.wo, att);
        if (l.bo)
            out = ggml_add(ctx, out, l.bo);
        return out;
    }

    // SwiGLU feed-forward (build_ffn with LLM_FFN_SILU, LLM_FFN_PAR; phi3:
    // LLM_FFN_SWIGLU on ffn_up's fused [gate; up] rows).
    ggml_tensor *ffn(uint32_t il, ggml_tensor *cur) const {
        const LayerWeights &l = w.layer(il);
        if (!l.ffn_gate) {
            cur = ggml_swiglu(ctx, mm(l.ffn_up, cur));
            return mm(l.ffn_down, cur);
        }
        ggml_tensor *up = mm(l.ffn_up, cur);
        ggml_tensor *gate = mm(l.ffn_gate, cur);
        cur = hp.arch == Arch::kGemma3 ? ggml_geglu_split(ctx, gate, up)  // LLM_FFN_GELU, PAR
                                       : ggml_swiglu_split(ctx, gate, up);
        return mm(l.ffn_down, cur);
    }

    // Routed experts (build_moe_ffn with softmax gating, top-k weights
    // normalized to sum 1 for qwen3moe, SwiGLU experts: src/llama-graph.cpp,
    // src/models/qwen3moe.cpp, qwen2moe.cpp), and qwen2moe's shared expert.
    // cur [n_embd, n_tokens] -> [n_embd, n_tokens].
    ggml_tensor *moe_ffn(uint32_t il, ggml_tensor *cur) const {
        const LayerWeights &l = w.layer(il);
        ggml_tensor *out = routed_experts(il, cur);
        if (!l.ffn_gate_inp_shexp)
            return out;
        // the shared expert, gated by sigmoid(gate . x) written as silu(x) / x
        ggml_tensor *gate_inp = ggml_mul_mat(ctx, l.ffn_gate_inp_shexp, cur);  // [1, n_tokens]
        ggml_tensor *gate = ggml_div(ctx, ggml_silu(ctx, gate_inp), gate_inp);
        ggml_tensor *up = ggml_mul_mat(ctx, l.ffn_up_shexp, cur);
        ggml_tensor *g_proj = ggml_mul_mat(ctx, l.ffn_gate_shexp, cur);
        ggml_tensor *shared =
            ggml_mul_mat(ctx, l.ffn_down_shexp, ggml_swiglu_split(ctx, g_proj, up));
        return ggml_add(ctx, out, ggml_mul(ctx, shared, gate));
    }

    // gpt-oss gates by a softmax over the selected experts' logits only
    // (SOFTMAX_WEIGHT), the others by a softmax over all experts.
    ggml_tensor *routed_experts(uint32_t il, ggml_tensor *cur) const {
        const LayerWeights &l = w.layer(il);
        const int64_t n_embd = cur->ne[0], n_tokens = cur->ne[1];
        const int64_t n_used = hp.n_expert_used;
        const bool softmax_weight = hp.arch == Arch::kGptOss;
        ggml_tensor *logits = ggml_mul_mat(ctx, l.ffn_gate_inp, cur);  // [n_expert, n_tokens]
        if (l.ffn_gate_inp_b)
            logits = ggml_add(ctx, logits, l.ffn_gate_inp_b);
        ggml_tensor *probs = softmax_weight ? logits : ggml_soft_max(ctx, logits);
        ggml_tensor *selected = ggml_argsort_top_k(ctx, probs, static_cast<int>(n_used));
        probs = ggml_reshape_3d(ctx, probs, 1, hp.n_expert, n_tokens);
        ggml_tensor *weights = ggml_get_rows(ctx, probs, selected);  // [1, n_used, n_tokens]
        if (softmax_weight) {
            weights = ggml_soft_max(ctx, ggml_reshape_2d(ctx, weights, n_used, n_tokens));
            weights = ggml_reshape_3d(ctx, weights, 1, n_used, n_tokens);
        }
        if (hp.arch == Arch::kQwen3Moe) {  // norm_w
            weights = ggml_reshape_2d(ctx, weights, n_used, n_tokens);
            ggml_tensor *sum = ggml_sum_rows(ctx, weights);  // [1, n_tokens]
            sum = ggml_clamp(ctx, sum, 6.103515625e-5f, INFINITY);
            weights = ggml_div(ctx, weights, sum);
            weights = ggml_reshape_3d(ctx, weights, 1, n_used, n_tokens);
        }
        ggml_build_forward_expand(g.gf, weights);  // as llama.cpp, for the fused top-k path

        cur = ggml_reshape_3d(ctx, cur, n_embd, 1, n_tokens);
        // per-expert biases (gpt-oss) are added by ggml_add_id
        auto bias = [&](ggml_tensor *x, ggml_tensor *b) {
            return b ? ggml_add_id(ctx, x, b, selected) : x;
        };
        ggml_tensor *up = bias(ggml_mul_mat_id(ctx, l.ffn_up_exps, cur, selected), l.ffn_up_exps_b);
        ggml_tensor *gate =
            bias(ggml_mul_mat_id(ctx, l.ffn_gate_exps, cur, selected), l.ffn_gate_exps_b);
        // [n_ff_exp, n_used, n_tokens]; gpt-oss: OpenAI's SwiGLU with alpha
        // 1.702 and limit 7 (build_moe_ffn, LLM_FFN_SWIGLU_OAI_MOE)
        cur = hp.arch == Arch::kGptOss ? ggml_swiglu_oai(ctx, gate, up, 1.702f, 7.0f)
                                       : ggml_swiglu_split(ctx, gate, up);
        ggml_tensor *experts =
            bias(ggml_mul_mat_id(ctx, l.ffn_down_exps, cur, selected), l.ffn_down_exps_b);
        experts = ggml_mul(ctx, experts, weights);  // [n_embd, n_used, n_tokens]
        ggml_build_forward_expand(g.gf, experts);

        // sum over the used experts, in llama.cpp's order
        std::vector<ggml_tensor *> each(static_cast<size_t>(n_used));
        for (int64_t i = 0; i < n_used; ++i) {
            each[static_cast<size_t>(i)] =
                ggml_view_2d(ctx, experts, n_embd, n_tokens, experts->nb[2], i * experts->nb[1]);
            ggml_build_forward_expand(g.gf, each[static_cast<size_t>(i)]);
        }
        ggml_tensor *out = each[0];
        for (int64_t i = 1; i < n_used; ++i) {
            out = ggml_add(ctx, out, each[static_cast<size_t>(i)]);
            ggml_build_forward_expand(g.gf, out);
        }
        return n_used == 1 ? ggml_cont(ctx, out) : out;
    }

    ggml_tensor *input() {
        if (w.is_first()) {
            g.inp_tokens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n_tokens);
            ggml_set_input(g.inp_tokens);
            ggml_set_name(g.inp_tokens, "inp_tokens");
            ggml_tensor *x = ggml_get_rows(ctx, w.tok_embd, g.inp_tokens);
            if (hp.arch == Arch::kGemma3)  // gemma3.cpp: token embeddings times sqrt(n_embd)
                x = ggml_scale(ctx, x, std::sqrt(static_cast<float>(hp.n_embd)));
            return x;
        }
        g.inp_embd = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, hp.n_embd, shape.n_tokens);
        ggml_set_input(g.inp_embd);
        ggml_set_name(g.inp_embd, "inp_embd");
        return g.inp_embd;
    }

    void inputs_common() {
        g.inp_pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n_tokens);
        ggml_set_input(g.inp_pos);
        ggml_set_name(g.inp_pos, "inp_pos");
        // one causal mask for global blocks, one for windowed ones (gemma3),
        // each only if a block of this range uses it: an input no node reads
        // gets no buffer
        const LayerRange r = w.range();
        for (uint32_t il = r.first; il < r.last; ++il) {
            if (w.skipped(il) || mode(il) == kKvOnly)
                continue;
            ggml_tensor *&mask = hp.is_swa(il) ? g.inp_mask_swa : g.inp_mask;
            if (mask)
                continue;
            mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, shape.n_kv, shape.n_tokens, 1, 1);
            ggml_set_input(mask);
            ggml_set_name(mask, hp.is_swa(il) ? "inp_mask_swa" : "inp_mask");
        }
        g.inp_k_rot = rotation_input(ctx, k_rotation_size(hp, kv.type_k()), "inp_k_rot");
        g.inp_v_rot = rotation_input(ctx, v_rotation_size(hp, kv.type_v()), "inp_v_rot");
        g.inp_k_idxs = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, shape.n_tokens);
        ggml_set_input(g.inp_k_idxs);
        ggml_set_name(g.inp_k_idxs, "inp_k_idxs");
        if (w.is_last() && shape.n_outputs < shape.n_tokens) {
            g.inp_out_ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n_outputs);
            ggml_set_input(g.inp_out_ids);
            ggml_set_name(g.inp_out_ids, "inp_out_ids");
        }
    }

    // DynamicSkipGate::Mode of block il (compute when dynamic skipping is off)
    static constexpr uint8_t kCompute = 0, kKvOnly = 1, kMixed = 2;
    uint8_t mode(uint32_t il) const {
        return shape.block_mode.empty() ? kCompute : shape.block_mode[il - w.range().first];
    }

    // cos(a, b) of each row [1, n_tokens] (dynamic skipping's signal)
    ggml_tensor *row_cosine(ggml_tensor *a, ggml_tensor *b) const {
        ggml_tensor *dot = ggml_sum_rows(ctx, ggml_mul(ctx, a, b));
        ggml_tensor *na = ggml_sum_rows(ctx, ggml_sqr(ctx, a));
        ggml_tensor *nb = ggml_sum_rows(ctx, ggml_sqr(ctx, b));
        return ggml_div(ctx, dot, ggml_sqrt(ctx, ggml_mul(ctx, na, nb)));
    }

    // Block il on hidden state x [n_embd, n_tokens]; `select` picks the
    // output rows before the feed-forward (the last block of the last stage).
    ggml_tensor *block(uint32_t il, ggml_tensor *x, bool select) const {
        const LayerWeights &l = w.layer(il);
        ggml_tensor *residual = x;
        ggml_tensor *cur = rms_norm(x, l.attn_norm);
        cur = attention(il, cur);
        if (select) {
            // only the rows whose logits are wanted go through the last FFN
            cur = ggml_get_rows(ctx, cur, g.inp_out_ids);
            residual = ggml_get_rows(ctx, residual, g.inp_out_ids);
        }
        if (l.attn_post_norm)
            cur = rms_norm(cur, l.attn_post_norm);
        ggml_tensor *ffn_inp = ggml_add(ctx, cur, residual);
        cur = rms_norm(ffn_inp, l.ffn_norm);
        cur = hp.is_moe() ? moe_ffn(il, cur) : ffn(il, cur);
        if (l.ffn_post_norm)
            cur = rms_norm(cur, l.ffn_post_norm);
        return ggml_add(ctx, cur, ffn_inp);
    }

    // A block under dynamic skipping: K/V only, or computed with its cosine
    // as an output and, for a row mask, the skipping rows' input kept.
    ggml_tensor *gated_block(uint32_t il, ggml_tensor *x) {
        const size_t b = il - w.range().first;
        if (mode(il) == kKvOnly) {
            attention(il, rms_norm(x, w.layer(il).attn_norm), /*kv_only=*/true);
            return x;
        }
        ggml_tensor *out = block(il, x, false);
        ggml_tensor *cos = row_cosine(x, out);
        ggml_set_output(cos);
        ggml_set_name(cos, ("cos-" + std::to_string(il)).c_str());
        ggml_build_forward_expand(g.gf, cos);
        g.out_cos[b] = cos;
        if (mode(il) == kMixed) {
            ggml_tensor *keep = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, shape.n_tokens);
            ggml_set_input(keep);
            ggml_set_name(keep, ("keep-" + std::to_string(il)).c_str());
            g.inp_keep[b] = keep;
            out = ggml_add(ctx, x, ggml_mul(ctx, ggml_sub(ctx, out, x), keep));
        }
        return out;
    }

    void build() {
        ggml_tensor *x = input();
        inputs_common();
        const LayerRange r = w.range();
        const bool gated = !shape.block_mode.empty();
        g.inp_keep.assign(r.size(), nullptr);
        g.out_cos.assign(r.size(), nullptr);
        // the last computed block selects the output rows (skipped blocks
        // pass the hidden state through, model/layer_skip.h); under dynamic
        // skipping the rows are selected after the last block
        uint32_t last_kept = r.last;
        for (uint32_t il = r.first; il < r.last; ++il)
            last_kept = w.skipped(il) ? last_kept : il;
        for (uint32_t il = r.first; il < r.last; ++il) {
            if (w.skipped(il))
                continue;
            x = gated ? gated_block(il, x)
                      : block(il, x, il == last_kept && g.inp_out_ids != nullptr);
        }
        if ((gated || last_kept == r.last) && g.inp_out_ids)  // not selected by a block
            x = ggml_get_rows(ctx, x, g.inp_out_ids);
        if (w.is_last()) {
            x = rms_norm(x, w.output_norm);
            ggml_set_output(x);  // kept for embeddings: a small [n_embd, n_outputs] buffer
            ggml_set_name(x, "hidden_norm");
            g.out_hidden = x;
            x = ggml_mul_mat(ctx, w.output, x);
            if (hp.final_logit_softcap > 0.0f) {  // gemma3.cpp: cap * tanh(logits / cap)
                x = ggml_scale(ctx, x, 1.0f / hp.final_logit_softcap);
                x = ggml_tanh(ctx, x);
                x = ggml_scale(ctx, x, hp.final_logit_softcap);
            }
        }
        if (x == g.inp_embd)  // a middle stage whose blocks are all skipped
            x = ggml_cont(ctx, x);
        ggml_set_output(x);
        ggml_set_name(x, w.is_last() ? "logits" : "hidden");
        g.out = x;
        ggml_build_forward_expand(g.gf, x);
    }
};

}  // namespace

std::unique_ptr<StageGraph> build_stage_graph(const ModelHparams &hp, const StageWeights &weights,
                                              const KvCache &kv, const GraphShape &shape,
                                              std::vector<uint8_t> *meta) {
    auto g = std::make_unique<StageGraph>();
    g->shape = shape;
    const size_t per_layer = 64 + (hp.is_moe() ? 56 + 2 * size_t{hp.n_expert_used} : 0);
    const size_t max_nodes = 1024 + per_layer * static_cast<size_t>(weights.range().size());
    const size_t meta_size =
        ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false);
    if (meta && meta->size() < meta_size)
        meta->resize(meta_size);
    ggml_init_params params{meta_size, meta ? meta->data() : nullptr, true};
    g->ctx.reset(ggml_init(params));
    g->gf = ggml_new_graph_custom(g->ctx.get(), max_nodes, false);
    Builder b{hp, weights, kv, shape, *g, g->ctx.get()};
    b.build();
    return g;
}

std::unique_ptr<KShiftGraph> build_k_shift_graph(const ModelHparams &hp,
                                                 const StageWeights &weights, const KvCache &kv) {
    auto g = std::make_unique<KShiftGraph>();
    const LayerRange r = weights.range();
    const size_t max_nodes = 8 + 16 * static_cast<size_t>(r.size());
    ggml_init_params params{
        ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false), nullptr,
        true};
    g->ctx.reset(ggml_init(params));
    ggml_context *ctx = g->ctx.get();
    g->gf = ggml_new_graph_custom(ctx, max_nodes, false);
    g->inp_shift = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, kv.size());
    ggml_set_input(g->inp_shift);
    ggml_set_name(g->inp_shift, "inp_k_shift");
    g->inp_k_rot = rotation_input(ctx, k_rotation_size(hp, kv.type_k()), "inp_k_rot");
    for (uint32_t il = r.first; il < r.last; ++il) {
        ggml_tensor *k = kv.k(il);
        if (!k)  // a skipped block
            continue;
        ggml_tensor *view = ggml_view_3d(ctx, k, hp.n_rot, hp.n_head_kv, kv.size(),
                                         ggml_row_size(k->type, hp.head_dim_k),
                                         ggml_row_size(k->type, hp.n_embd_k_gqa()), 0);
        auto rope = [&](ggml_tensor *x, bool inplace) {
            auto *fn = inplace ? ggml_rope_ext_inplace : ggml_rope_ext;
            return fn(ctx, x, g->inp_shift, weights.rope_freqs, static_cast<int>(hp.n_rot),
                      static_cast<int>(hp.rope_type), static_cast<int>(hp.n_ctx_orig),
                      hp.rope_base(il), hp.rope_scale(il), hp.rope_ext_factor,
                      k_shift_attn_factor(hp, il), hp.rope_beta_fast, hp.rope_beta_slow);
        };
        ggml_tensor *out = view;
        if (!ggml_is_quantized(k->type)) {
            out = rope(view, true);
        } else {
            // dequantize, rotate back, RoPE, rotate again, quantize (build_rope_shift)
            ggml_tensor *f = ggml_cast(ctx, view, GGML_TYPE_F32);
            if (g->inp_k_rot)
                f = mul_hadamard(ctx, f, g->inp_k_rot);
            f = rope(f, false);
            if (g->inp_k_rot)
                f = mul_hadamard(ctx, f, g->inp_k_rot);
            out = ggml_cpy(ctx, f, view);
        }
        ggml_build_forward_expand(g->gf, out);
    }
    return g;
}

float k_shift_attn_factor(const ModelHparams &hp, uint32_t il) {
    // ggml's rope_yarn multiplies cos/sin by attn_factor, and by
    // 1 + 0.1 ln(1/freq_scale) when ext_factor != 0 (ggml-cpu/ops.cpp)
    const float yarn =
        hp.rope_ext_factor != 0.0f ? 1.0f + 0.1f * std::log(1.0f / hp.rope_scale(il)) : 1.0f;
    return 1.0f / yarn;
}

uint32_t k_rotation_size(const ModelHparams &hp, ggml_type type_k) {
    if (!ggml_is_quantized(type_k) || hp.head_dim_k % 64 != 0)
        return 0;
    uint32_t n = 64;
    while (hp.head_dim_k % (2 * n) == 0)
        n *= 2;
    return n;
}

uint32_t v_rotation_size(const ModelHparams &hp, ggml_type type_v) {
    return ggml_is_quantized(type_v) && hp.head_dim_v % 64 == 0 ? 64 : 0;
}

std::vector<float> hadamard_matrix(uint32_t n) {
    std::vector<float> h(static_cast<size_t>(n) * n);
    h[0] = 1.0f / std::sqrt(static_cast<float>(n));
    for (uint32_t s = 1; s < n; s *= 2) {
        for (uint32_t i = 0; i < s; ++i) {
            for (uint32_t j = 0; j < s; ++j) {
                const float v = h[i * n + j];
                h[(i + s) * n + j] = v;
                h[i * n + j + s] = v;
                h[(i + s) * n + j + s] = -v;
            }
        }
    }
    return h;
}

}  // namespace colony
