// Settings of a coordinator (`colony serve`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "net/wire-dtype.h"

namespace colony {

struct CoordinatorOptions {
    std::string model_path;
    std::string host = "127.0.0.1";    // interface of the control and data sockets
    uint16_t port = 7411;              // control socket; 0 = an ephemeral port
    std::filesystem::path config_dir;  // node.key and tokens (mode 0600)
    std::filesystem::path cache_dir;   // shards written for the workers
    std::string split;                 // "0:3,3:5" (stage 0 is the coordinator); "" = proportional
    uint32_t workers_expected = 1;     // plan once this many workers have joined (0: serve alone)
    wire_dtype wire_type = WIRE_DTYPE_F16;  // hidden states on the wire
    uint32_t n_ctx = 4096;                  // KV cells per stage, shared by all sequences
    uint32_t n_parallel = 4;           // sequences in flight; each has n_ctx / n_parallel positions
    uint32_t n_ubatch = 512;           // tokens per ubatch (prefill chunk)
    int n_threads = 0;                 // compute threads of stage 0; 0 = all cores
    double mem_limit_gib = 0;          // the coordinator's weight in the proportional split
    bool insecure = false;             // plaintext, no authentication (warns)
    int heartbeat_interval_ms = 1000;  // HEARTBEAT to every worker
    int heartbeat_timeout_ms = 3000;   // a worker silent this long is lost
    int stall_timeout_ms = 30000;      // an ubatch unanswered this long fails its requests

    uint32_t n_ctx_seq() const { return n_parallel ? n_ctx / n_parallel : 0; }
};

}  // namespace colony
