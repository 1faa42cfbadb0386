// Debug output of the last stage (`--debug-logits-file PATH` on colony join,
// serve and run): what the sampler saw, so that tests can compare a cluster
// with an independent reference (libllama) although only token ids travel
// back (DESIGN.md, decision 1).
//
// File format (docs/pipeline.md, "Debug: the logits file"): a sequence of
// records, each written with one append so that several processes can share
// the file (only the last stage writes; after a re-plan another process may
// be the last stage). All fields little-endian.
//
//   offset size field
//        0    4 magic "CLGT"
//        4    4 u32 version (kLogitsDumpVersion)
//        8    4 i32 seq_id   the sequence (a slot; reused by later requests)
//       12    4 i32 pos      position of the token whose logits these are
//       16    4 i32 token    the token sampled from them (sits at pos + 1)
//       20    4 u32 n_logits n_vocab for a sequence's first sampled token, else 0
//       24  4*n  f32 logits  [n_logits], before any sampler touched them
//
// So a record with logits starts a new sequence, and the records of the same
// seq_id after it (without logits) give the rest of its sampled tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace colony {

class SequenceSamplers;

inline constexpr uint32_t kLogitsDumpVersion = 1;
inline constexpr size_t kLogitsDumpHeaderBytes = 24;

/// One record of a logits file.
struct LogitsRecord {
    int32_t seq_id = 0;
    int32_t pos = 0;
    int32_t token = 0;
    std::vector<float> logits;  // F32 [n_vocab] or empty
};

/// Appends records to a logits file (created with mode 0644 when missing;
/// an existing file is appended to, never truncated).
class LogitsDump {
  public:
    /// Opens `path`. Throws Error(kResource) when it cannot be opened.
    explicit LogitsDump(const std::string &path);
    ~LogitsDump();
    LogitsDump(const LogitsDump &) = delete;
    LogitsDump &operator=(const LogitsDump &) = delete;

    /// Appends one record; logits may be null (n_logits 0). A failed write is
    /// logged, never thrown: the dump must not stop the stage. Not
    /// thread-safe (the stage's thread calls it).
    void write(int32_t seq_id, int32_t pos, int32_t token, const float *logits, uint32_t n_logits);

    const std::string &path() const { return path_; }

  private:
    std::string path_;
    int fd_ = -1;
    std::vector<uint8_t> buf_;
};

/// Makes `samplers` append a record to `dump` for every token it samples,
/// with the logits for each sequence's first one. A null dump removes the hook.
void install_logits_dump(SequenceSamplers &samplers, std::shared_ptr<LogitsDump> dump,
                         uint32_t n_vocab);

/// Reads every record of a logits file. Throws Error(kNotFound) when the file
/// cannot be opened and Error(kCorrupt) for a bad magic or version or a
/// truncated record (with its byte offset).
std::vector<LogitsRecord> read_logits_dump(const std::string &path);

}  // namespace colony
