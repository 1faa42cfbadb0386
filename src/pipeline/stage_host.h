// StageHost: one stage of a plan with everything around its forward pass, the
// same on the coordinator (stage 0, or the whole model when it serves alone)
// and on every worker:
//
//   the Stage (weights of a layer range, KV cache), loaded or kept
//   the last stage's samplers (SequenceSamplers, one per sequence)
//   the outgoing link: a PUSH socket to the next stage (or, from the last
//     stage of a worker, to the coordinator), CURVE client or plaintext
//   timing: StageMeter counters (/metrics, STATUS), the wall time of each step
//
// The owner (BatchScheduler for stage 0, WorkerData on a worker) decides what
// to run and where its results go; the host only runs and sends. Not
// thread-safe: one thread owns a host (meter() snapshots are thread-safe).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "model/hparams.h"
#include "net/keys.h"
#include "net/link_watch.h"
#include "net/message_fence.h"
#include "net/wire.h"
#include "pipeline/node_status.h"
#include "pipeline/seq_samplers.h"
#include "pipeline/stage_step.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"

namespace colony {

class GgufFile;
class LogitsDump;

/// What one run of a ubatch through the host produced.
struct HostStep {
    StageOutput out;        // next hop's ACTIVATIONS, or TOKENS on the last stage
    double compute_ms = 0;  // wall time of the stage step (unpack, forward, pack or sample)
};

class StageHost {
  public:
    StageHost() = default;
    StageHost(const StageHost &) = delete;
    StageHost &operator=(const StageHost &) = delete;

    /// Whether the loaded stage is `cfg` over the file at `path` (then
    /// reset() serves instead of a new load()).
    bool holds(const std::string &path, const StageConfig &cfg) const;
    /// Loads `cfg.range` of `file` (opened from `path`) as this host's stage,
    /// replacing any; StageMeter::loading reports the progress. The samplers
    /// start empty, sized by hp.n_vocab. Throws what Stage's constructor
    /// throws (kNotFound, kCorrupt, kResource, kInvalidArgument); the host is
    /// then unloaded.
    void load(const std::string &path, std::shared_ptr<const GgufFile> file, const ModelHparams &hp,
              const StageConfig &cfg);
    /// Keeps the stage, frees every sequence's cells and drops the samplers.
    void reset();
    /// No stage, no samplers, no link (the node left the plan).
    void unload();
    bool loaded() const { return stage_ != nullptr; }
    Stage &stage() { return *stage_; }
    const Stage &stage() const { return *stage_; }
    /// The file the stage was loaded from (null when unloaded).
    const std::shared_ptr<const GgufFile> &file() const { return file_; }

    /// Debug: the last stage's samplers write every sampled token (and each
    /// sequence's first logits) to `dump`; null: none. Applies from the next
    /// load() on and to the current samplers.
    void set_logits_dump(std::shared_ptr<LogitsDump> dump);
    /// Debug: the stage runs `factor` times slower (Stage::set_slowdown).
    void set_slowdown(double factor);
    /// At most `n` compute threads (Stage::set_n_threads; 0 = the configured
    /// count), for this stage and the ones loaded later.
    void set_thread_limit(int n);

    /// Opens the link to the next stage: a PUSH socket to `endpoint`, a CURVE
    /// client of `server_key_z85` with `node_keys` (plaintext when the key is
    /// empty). connect_now false: connected on the first send (a worker's next
    /// stage admits its key only once the plan is READY). Replaces any link.
    void open_link(zmq::context_t &ctx, const std::string &endpoint,
                   const std::string &server_key_z85, const CurveKeypair &node_keys,
                   bool connect_now);
    void close_link();
    bool has_link() const { return push_ != nullptr; }
    /// How long the link's connection has been down, ms (LinkWatch: a
    /// killed next stage at once, a silent one after the data link's
    /// heartbeat timeout); nullopt while it is up, was never up, or there
    /// is no link. Reads the monitor's events (cheap; never blocks).
    std::optional<int64_t> link_down_ms();
    /// The next stage serves from now on: a link that never connected gets
    /// LinkWatch's handshake budget from here.
    void link_expected();

    /// Runs `in` (checked against the plan by the caller) through the stage:
    /// run_stage_step, timed and counted in the meter. out_dtype: the hidden
    /// state's wire type for the next stage. Throws what run_stage_step throws
    /// (the KV cache is then unchanged).
    HostStep step(const WireActivations &in, WireDtype out_dtype);

    /// Sends `body` on the link, the message's wire request id set to
    /// `request_id` and its session and sequence to the link's next ones. Returns false, with a
    /// warning naming `to`, when there is no link, the send timed out or the message cannot be
    /// encoded; the hop's time is recorded when body is ACTIVATIONS.
    [[nodiscard]] bool send(WireBody body, const char *to, uint64_t request_id = 0);

    /// Frees positions >= p0 of sequence seq (-1: every sequence) on the
    /// stage; at p0 == 0 also its sampler.
    void release(int32_t seq, int32_t p0, uint32_t n_seq_max);
    /// A context shift of `seq` (WireSeqShift, kv_window.h): drops
    /// [p0, p0 + n_discard) and moves [p0 + n_discard, n_past) down by
    /// n_discard. Errors: Stage::seq_add's; kProtocol for a sequence outside
    /// [0, n_seq_max).
    void shift(const WireSeqShift &s, uint32_t n_seq_max);

    SequenceSamplers &samplers() { return *samplers_; }
    /// Counters of this host's stage. Thread-safe.
    StageMeter &meter() { return meter_; }
    const StageMeter &meter() const { return meter_; }
    /// Wire bytes sent on the link so far. Thread-safe.
    uint64_t bytes_sent() const { return bytes_sent_.load(); }

  private:
    void make_samplers(uint32_t n_vocab);

    std::shared_ptr<const GgufFile> file_;
    std::string path_;
    StageConfig cfg_;
    int thread_limit_ = 0;  // set_thread_limit
    std::unique_ptr<Stage> stage_;
    std::unique_ptr<SequenceSamplers> samplers_;
    std::unique_ptr<Tokenizer> vocab_;  // of path_, loaded when a grammar first needs it
    std::shared_ptr<LogitsDump> logits_dump_;
    uint32_t n_vocab_ = 0;
    std::unique_ptr<zmq::socket_t> push_;
    std::unique_ptr<LinkWatch> watch_;  // of push_ (destroyed before it)
    bool link_was_down_ = false;        // the meter holds a down time
    std::string link_endpoint_;
    bool link_connected_ = false;
    WireSender sender_;  // session and sequence of the link; a new session per open_link
    StageMeter meter_;
    std::atomic<uint64_t> bytes_sent_{0};
};

}  // namespace colony
