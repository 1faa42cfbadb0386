"""colony's cluster benchmark harness (docs/benchmarks.md, "How to run").

Modules, one concern each:
  proc       processes with timeouts, peak RSS (wait4) and memory cgroups
  stats      percentiles, mean/stddev
  gguf       a minimal GGUF header reader (architecture, layers, n_embd, vocab)
  models     model specs: a path or a cached synthetic model (colony synth)
  split      layer splits: stage counts -> colony ranges, llama.cpp -ngl/-ts
  lab        the network lab (scripts/netlab/netlab-lib.sh) and its counters
  limit      the physical limit of a pipeline on a link profile
  systems    one measurement per system: llama.cpp, colony (cluster of one),
             llama.cpp RPC, colony's cluster (hook)
  openai     an OpenAI /v1/completions client: TTFT, time per token, streams
  report     results (JSON lines) -> docs/benchmarks.md sections and PNG plots
"""
