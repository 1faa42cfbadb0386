// -m MODEL: a local GGUF file, or a model on a hub that is pulled first.
#pragma once

#include <cstdint>
#include <string>

namespace colony {

/// What `colony pull` prints while it downloads: a progress line on stderr
/// (rewritten in place on a terminal, one line every 10 s otherwise).
class PullPrinter {
  public:
    explicit PullPrinter(bool quiet);
    void progress(uint64_t done, uint64_t total, uint64_t resumed_from, bool hashing);
    void note(const std::string &text) const;
    /// Ends the progress line.
    void finish();

  private:
    bool quiet_, tty_;
    double start_s_, last_s_ = -1.0;
    bool open_ = false;
};

/// `arg` itself when it is a local path; otherwise (is_model_ref) pulls the
/// hub model into the model cache ($COLONY_MODEL_CACHE, else
/// $XDG_CACHE_HOME/colony/models) from $HF_ENDPOINT with $HF_TOKEN, showing
/// progress, and returns the cached file's path. Errors: those of pull_model.
/// `url`, when given, receives the hub resolve URL of a pulled model ("" for a
/// local path): a coordinator passes it to its workers (ASSIGN's shard_url).
std::string resolve_model_arg(const std::string &arg, std::string *url = nullptr);

}  // namespace colony
