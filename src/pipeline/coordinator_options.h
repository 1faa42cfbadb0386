// Settings of a coordinator (`colony serve`) and of the batch scheduler that
// serves requests, with workers or alone (batch_scheduler.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "ggml.h"
#include "model/layer_skip.h"
#include "net/wire_dtype.h"
#include "runtime/kv_window.h"
#include "runtime/speculative.h"
#include "runtime/stage.h"

namespace colony {

struct CoordinatorOptions {
    std::string model_path;
    std::string model_url;           // the hub resolve URL the model came from ("": none); workers
                                     // may build their shards from its byte ranges (docs/models.md)
    std::string host = "127.0.0.1";  // interface of the control and data sockets
    uint16_t port = 7411;            // control socket; 0 = an ephemeral port
    std::filesystem::path config_dir;  // node.key and tokens (mode 0600)
    std::filesystem::path cache_dir;   // shards written for the workers
    std::string split;                 // "0:3,3:5" (stage 0 is the coordinator); "" = proportional
    uint32_t workers_expected = 1;     // plan once this many workers have joined (0: serve alone)
    WireDtype wire_type = WIRE_DTYPE_F16;  // hidden states on the wire
    uint32_t n_ctx = 4096;                 // KV cells per stage, shared by all sequences
    uint32_t n_parallel = 4;           // sequences in flight; each has n_ctx / n_parallel positions
    uint32_t n_ubatch = 512;           // tokens per ubatch (prefill chunk)
    int n_threads = 0;                 // compute threads of stage 0; 0 = all cores
    CpuAffinity cpu;                   // where they run (cluster/cpu_placement.h)
    GpuOffload gpu;                    // stage 0 on a GPU: -ngl/--device (runtime/stage.h)
    ggml_type type_k = GGML_TYPE_F16;  // stage 0's KV cache types (-ctk, -ctv): a stage's
    ggml_type type_v = GGML_TYPE_F16;  // own choice (DESIGN.md, decision 9)
    // --kv-window/--kv-sinks: every sequence slides its KV cache over this
    // window, on every stage (runtime/kv_window.h; SEQ_SHIFT); off by default
    KvWindow kv_window;
    // speculative decoding (runtime/speculative.h): drafts made here, on the
    // coordinator, verified at the last stage; off by default
    SpecParams spec;
    // --skip-layers: blocks no stage computes (model/layer_skip.h); each
    // stage gets its share in ASSIGN, and a stage whose blocks are all
    // skipped is left out of the pipeline (its range joins the one before)
    LayerSkip skip_layers;
    // --dynamic-skip (runtime/dynamic_skip.h): every stage's gate, the same
    // options in ASSIGN; resolved against the model when it is loaded
    DynamicSkip dyn_skip;
    bool use_mmap = true;    // stage 0 maps the file (false: --no-mmap, read into memory)
    bool use_repack = true;  // CPU weight repacking (llama.cpp's extra buffer types)
    // stage 0's batch invariance in a cluster (runtime/stage.h; --batch-invariant: kFull,
    // which a coordinator serving alone keeps too; kAttention only with workers)
    StageConfig::Invariance invariance = StageConfig::Invariance::kAttention;
    double mem_limit_gib = 0;  // memory the planner may use here (GiB); 0 = MemAvailable
    bool insecure = false;     // plaintext, no authentication (warns)
    // --confirm-pairing: a node key the nodes file does not approve waits
    // until a person runs `colony node approve` (net/node_store.h); false:
    // trust on first use (the key is pinned all the same)
    bool confirm_pairing = false;
    int heartbeat_interval_ms = 250;  // HEARTBEAT to every worker
    int heartbeat_timeout_ms = 1500;  // a worker silent this long (plus 4 round trips) is lost
    int stall_timeout_ms = 30000;     // base of the stall allowance (stall_watch.h)
    // Recovery (DESIGN.md, decision 10): when a stage is lost, running
    // requests wait for the next plan and are replayed from their token
    // history; false (--no-recovery) fails them at once, as before.
    bool recovery = true;
    bool hot_spares = true;  // workers outside the plan load a stage's range ahead (standby)
    int recovery_timeout_ms = 20000;  // replayed requests waiting longer for a plan fail

    // Planner (docs/cluster.md). measured: the first plan is proportional so
    // the cluster starts at once; once every node has measured itself on the
    // model, plan_optimal takes over and re-plans on join, leave, drift and low
    // battery. static: --split or the proportional split, re-made only when
    // a stage is lost (the behaviour before the planner).
    bool measured_planner = true;
    bool throughput_objective = false;     // plan for many sequences (slowest stage), not one
    std::string node_name;                 // the coordinator's name in plans; "" = host name
    double replan_drift_threshold = 0.25;  // |measured / planned - 1| of a stage's ms per layer
    double replan_window_s = 10;           // ... sustained this long
    double replan_cooldown_s = 30;         // no optional re-plan sooner after the last one
    double replan_margin = 0.10;           // adopt only when this much faster
    double min_battery_percent = 20;       // below it and not charging: leave the plan
    int replan_drain_timeout_ms = 120000;  // give a re-plan up when requests run longer
    double debug_slowdown = 1.0;    // debug: stage 0 runs this many times slower (Stage slowdown)
    std::string debug_logits_file;  // debug: when stage 0 is also the last stage, append sampled
                                    // tokens and first logits here (logits_dump.h; "" = none)

    uint32_t n_ctx_seq() const { return n_parallel ? n_ctx / n_parallel : 0; }
};

}  // namespace colony
