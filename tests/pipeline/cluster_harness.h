// Test helper: colony processes on 127.0.0.1 (serve, join, run, generate),
// their logs, and HTTP calls to the coordinator's API.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/child_process.h"

namespace colony::test {

/// Path of the colony binary under test.
std::string colony_bin();

/// Whole content of a file ("" when missing).
std::string read_text(const std::filesystem::path &p);

/// Runs colony with args to completion; returns stdout. *rc gets the exit code.
std::string run_colony(const std::vector<std::string> &args, int *rc = nullptr,
                       std::string *stderr_text = nullptr, int timeout_ms = 120000);

/// `colony generate --temp 0` text, the single-process reference.
std::string reference_greedy(const std::string &model, const std::string &prompt, int n);

/// A `colony serve` process with its own config and cache dirs under dir.
class ServeProcess {
  public:
    /// prefix goes before the colony binary (e.g. {"ip", "netns", "exec", NS}).
    ServeProcess(const std::filesystem::path &dir, const std::string &model, int workers_expected,
                 const std::vector<std::string> &extra = {},
                 const std::vector<std::string> &prefix = {});
    uint16_t control_port() const { return control_port_; }
    uint16_t api_port() const { return api_port_; }
    const std::string &token() const { return token_; }
    const std::string &data_endpoint() const { return data_endpoint_; }
    std::string coordinator() const { return "127.0.0.1:" + std::to_string(control_port_); }
    std::filesystem::path config_dir() const { return dir_ / "config"; }
    std::string log() const { return read_text(dir_ / "serve.log"); }
    ChildProcess &process() { return *proc_; }

  private:
    std::filesystem::path dir_;
    std::unique_ptr<ChildProcess> proc_;
    uint16_t control_port_ = 0, api_port_ = 0;
    std::string token_, data_endpoint_;
};

/// A `colony join` process; config and cache dirs under dir (reused when the
/// same dir is given again, like a restarted worker).
class JoinProcess {
  public:
    JoinProcess(const std::filesystem::path &dir, const std::string &coordinator,
                const std::string &token, const std::vector<std::string> &extra = {},
                const std::vector<std::string> &prefix = {});
    std::string log() const { return read_text(dir_ / "join.log"); }
    std::filesystem::path cache_dir() const { return dir_ / "cache"; }
    std::filesystem::path config_dir() const { return dir_ / "config"; }
    ChildProcess &process() { return *proc_; }

  private:
    std::filesystem::path dir_;
    std::unique_ptr<ChildProcess> proc_;
};

struct HttpReply {
    int status = 0;  // 0: no answer
    nlohmann::json body;
};

HttpReply http_get(uint16_t port, const std::string &path);
/// The body of GET path as text, e.g. /metrics ("" when there is no answer).
std::string http_get_text(uint16_t port, const std::string &path);
HttpReply http_post(uint16_t port, const std::string &path, const nlohmann::json &body,
                    int timeout_s = 60);

/// One streamed completion (/v1/completions with "stream": true and
/// stream_options.include_usage) as a client saw it.
struct StreamReply {
    int status = 0;                  // 0: no answer
    std::string text;                // the "text" of every chunk, in order
    std::string error;               // the JSON of an error event ("" when none)
    std::string finish_reason;       // of the last chunk that had one
    int64_t completion_tokens = -1;  // usage of the last chunk (-1: none)
    int n_chunks = 0;                // chunks with text
    double max_gap_ms = 0;           // largest time between two chunks with text
    bool done = false;               // the stream ended with [DONE]
};

/// POSTs `body` (stream and include_usage are set here) to /v1/completions
/// and reads the whole stream; on_chunk(n) runs after each chunk with text
/// (n: chunks so far) on the reading thread.
StreamReply http_stream(uint16_t port, nlohmann::json body, int timeout_s = 120,
                        const std::function<void(int)> &on_chunk = {});

/// Polls /health until its status is `status`; returns false on timeout.
bool wait_health(uint16_t port, const std::string &status, int timeout_ms);

/// Of workers named "w1" .. "w<n_workers>", the index (0-based) of the one whose
/// stage starts at block `first` in /v1/cluster; -1 when none does.
int worker_holding(uint16_t api_port, uint32_t first, size_t n_workers);

/// Greedy completion text through the API (throws std::runtime_error with
/// the body on a non-200 answer).
std::string complete_greedy(uint16_t port, const std::string &prompt, int n);

/// KV cells that the coordinator's own stage (stage 0) holds now, from GET
/// /v1/cluster on api_port; -1 when there is no answer.
int64_t coordinator_kv_used_cells(uint16_t api_port);

/// Waits until the coordinator's stage holds at least n_cells KV cells: the
/// running requests' prompts and generated tokens have reached that many
/// positions (each generated token comes back from the last stage before
/// stage 0 stores it). False on timeout.
bool wait_coordinator_kv_cells(uint16_t api_port, int64_t n_cells, int timeout_ms);

/// Waits until `pred` holds or timeout_ms passes.
template <class Pred>
bool eventually(Pred pred, int timeout_ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
        if (pred())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
}

// ---- processes, files and HTTPS (cluster_process_test, cluster_serve_security_test,
// cluster_shard_verify_test)

/// Adds 1 to the byte at `offset` of `file`, keeping its size and restoring its
/// modification time (utimensat), so only a check of the content can see it.
/// Throws std::runtime_error when the file cannot be changed.
void flip_byte_keep_mtime(const std::filesystem::path &file, uint64_t offset);

/// Pids whose parent is `pid` (from /proc/<n>/stat).
std::vector<int> child_pids(int pid);

/// True when `pid` has exited: no /proc entry, or a zombie nobody reaped.
bool process_gone(int pid);

/// The command line of `pid` as the program sees its argv ({} when it is
/// gone); a qemu-user binfmt_misc interpreter in front of it is left out.
std::vector<std::string> process_cmdline(int pid);

/// The value after `flag` in `args` ("" when absent).
std::string arg_after(const std::vector<std::string> &args, const std::string &flag);

/// `colony run` serving the API (no -p) with `args` after the model, its
/// temporary directory under `tmpdir` (TMPDIR). Waits for "listening on" on
/// its stdout; throws std::runtime_error with its output when it does not
/// come within 120 s.
class RunProcess {
  public:
    RunProcess(const std::filesystem::path &dir, const std::string &model,
               const std::vector<std::string> &args, const std::filesystem::path &tmpdir,
               const std::vector<std::string> &env = {});
    /// "http://127.0.0.1:PORT" or "https://..." as printed.
    const std::string &url() const { return url_; }
    uint16_t api_port() const { return port_; }
    std::string output() const { return read_text(dir_ / "run.out") + read_text(dir_ / "run.err"); }
    ChildProcess &process() { return *proc_; }

  private:
    std::filesystem::path dir_;
    std::unique_ptr<ChildProcess> proc_;
    std::string url_;
    uint16_t port_ = 0;
};

}  // namespace colony::test

namespace colony::test {

/// One sequence in a last stage's logits file (`--debug-logits-file`,
/// pipeline/logits_dump.h): the logits its first token was sampled from and
/// every token sampled for it, in order.
struct DumpedSequence {
    int32_t seq_id = 0;
    int32_t first_pos = 0;        // position whose logits are `logits` (last prompt token)
    std::vector<float> logits;    // F32 [n_vocab]
    std::vector<int32_t> tokens;  // sampled tokens, first one included
};

/// The sequences of a logits file, in the order they started. Throws
/// std::runtime_error (or colony::Error from the reader) when the file is
/// missing or malformed, or a token record has no sequence started before it.
std::vector<DumpedSequence> dumped_sequences(const std::string &path);

/// Writes a synthetic model with `colony synth --preset preset -o out -q`
/// plus `extra` (shape overrides); throws std::runtime_error with colony's
/// stderr when it fails.
void synth_model(const std::string &out, const std::string &preset,
                 const std::vector<std::string> &extra);

}  // namespace colony::test
