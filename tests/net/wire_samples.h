// One valid, non-trivial message of every wire type, shared by the wire tests.
#pragma once

#include <numeric>
#include <vector>

#include "net/wire.h"

namespace colony::test {

inline WireKey test_key(uint8_t seed) {
    WireKey k{};
    for (size_t i = 0; i < k.size(); ++i) {
        k[i] = static_cast<uint8_t>(seed + 7 * i + 1);
    }
    return k;
}

/// A 2-sequence ubatch: seq 3 has tokens 0, 2 at positions 10, 11 and seq 7
/// has token 1 at position 0; f16 hidden state [64, 3].
inline WireActivations sample_activations() {
    WireActivations a;
    a.plan_epoch = 42;
    a.dtype = WIRE_DTYPE_F16;
    a.n_embd = 64;
    a.n_tokens = 3;
    WireSeq s3 = wire_seq(3, 2);
    s3.sampling.temperature = 0.8f;
    s3.sampling.top_k = 40;
    s3.sampling.top_p = 0.95f;
    s3.sampling.min_p = 0.05f;
    s3.sampling.seed = 1234;
    s3.sampling.penalty_last_n = 64;
    s3.sampling.penalty_repeat = 1.1f;
    s3.sampling.penalty_freq = 0.1f;
    s3.sampling.penalty_present = 0.2f;
    s3.sampling.n_drawn = 17;
    a.seqs = {s3, wire_seq(7, 1)};
    a.tokens = {100, 200, -1};
    a.pos = {10, 0, 11};
    a.seq_id = {3, 7, 3};
    a.outputs = {1, 2};
    a.data.resize(3 * 64 * 2);
    std::iota(a.data.begin(), a.data.end(), uint8_t{0});
    return a;
}

/// sample_activations() whose sequence 7 (at position 0) carries options:
/// a lazy grammar with triggers, logprobs.
inline WireActivations sample_activations_with_options() {
    WireActivations a = sample_activations();
    WireSeq &s7 = a.seqs[1];
    s7.has_options = true;
    s7.options.n_probs = 5;
    s7.options.n_prompt = 12;
    s7.options.grammar = R"(root ::= "yes" | "no")";
    s7.options.lazy = true;
    s7.options.trigger_patterns = {"<tool_call>"};
    s7.options.trigger_tokens = {151657};
    return a;
}

inline std::vector<WireMessage> sample_messages() {
    std::vector<WireMessage> v;
    auto add = [&](WireBody body) {
        WireMessage m;
        m.sequence = static_cast<uint32_t>(v.size() * 3 + 1);
        m.request_id = 0x0102030405060708ull + v.size();
        m.session = 0x9E3779B9u + static_cast<uint32_t>(v.size());
        m.body = std::move(body);
        v.push_back(std::move(m));
    };
    add(WireJoin{"phone-2",
                 test_key(1),
                 "0.1.0",
                 3ull << 30,
                 2ull << 30,
                 8,
                 "android",
                 "aarch64",
                 "cpu",
                 "tcp://*:7412",
                 {{test_key(3), 10, 20}, {test_key(4), 0, 5}}});
    add(WireJoinAccept{5, 1000});
    add(WireJoinReject{ErrorCode::kUnauthorized, "token revoked"});
    add(WireHeartbeat{123456789012345ull, 77});
    WireAssign as;
    as.plan_epoch = 9;
    as.layer_first = 4;
    as.layer_last = 8;
    as.model_hash = test_key(9);
    as.n_layer = 12;
    as.n_embd = 256;
    as.n_vocab = 32000;
    as.dtype = WIRE_DTYPE_Q8_0;
    as.n_ctx = 4096;
    as.n_ubatch = 512;
    as.n_seq_max = 8;
    as.is_last = true;
    as.sampling = true;
    as.next_endpoint = "tcp://192.168.1.20:7413";
    as.next_key = test_key(2);
    as.prev_key = test_key(3);
    as.shard_url = "https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q4_K_M.gguf";
    as.shard_sha256 = test_key(5);
    as.shard_size = 123456789;
    as.skip_layers = {5, 6};
    as.dyn_skip = 0.9f;
    as.dyn_skip_probe = 8;
    as.hot_layers = {0, 11};
    add(as);
    add(WireReady{9, 4, 8});
    add(WireShardRequest{test_key(9), 4, 8, 1 << 20});
    add(WireShardChunk{1 << 20, 5 << 20, std::vector<uint8_t>(1000, 0xab)});
    add(WireShardEnd{5 << 20, test_key(4)});
    add(sample_activations_with_options());
    WireTokens tokens = wire_tokens(42, {{3, 1500, 11}, {7, 29, 0}});
    tokens.sampled[1].has_logprob = true;  // with logprobs: the token and two alternatives
    tokens.sampled[1].logprob = -0.25f;
    tokens.sampled[1].top = {{29, -0.25f}, {31, -1.5f}};
    tokens.embeddings.push_back({5, 9, {0.6f, -0.8f, 0.0f}});  // an embedding, pooled at pos 9
    add(tokens);
    add(WireSeqRelease{3, 5, 42});
    add(WireError{ErrorCode::kOutOfRange, "position 5000 is beyond the context size 4096"});
    add(WireStatus{R"({"node":"phone-2","ms_per_layer":1.5})"});
    add(WireSeqShift{42, 3, 4, 125, 255});
    return v;
}

}  // namespace colony::test
