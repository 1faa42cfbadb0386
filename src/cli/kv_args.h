// KV cache options shared by the commands that run a stage on this machine:
// the cache types (-ctk/-ctv, llama.cpp's names) and the sliding window
// (--kv-window/--kv-sinks, runtime/kv_window.h), one help text each.
#pragma once

#include <string>

#include "cli/args.h"
#include "runtime/kv_window.h"

namespace colony {

/// Adds -ctk/--cache-type-k and -ctv/--cache-type-v to `p`, parsed into
/// `k` and `v` (names for parse_cache_type).
inline void add_cache_type_args(ArgParser &p, std::string *k, std::string *v) {
    p.add("-ctk", "--cache-type-k", "TYPE",
          "KV cache type of K: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl (quantized K/V "
          "are Hadamard-rotated, as llama.cpp)",
          k);
    p.add("-ctv", "--cache-type-v", "TYPE", "KV cache type of V (same types)", v);
}

/// Adds --kv-window N and --kv-sinks S to `p`, parsed into `w`.
inline void add_kv_window_args(ArgParser &p, KvWindow *w) {
    p.add("", "--kv-window", "N",
          "sliding KV window of every sequence: before position N-1 would be stored, half of "
          "the positions after the sinks are dropped and the rest shift down (llama.cpp's "
          "context shift; in a cluster on every stage; 0 = off; docs/edge.md)",
          &w->window);
    p.add("", "--kv-sinks", "S",
          "positions at the start of each sequence the window always keeps (attention sinks)",
          &w->sinks);
}

}  // namespace colony
