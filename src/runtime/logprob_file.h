// The base log-probability file of KL-divergence runs, in llama-perplexity's
// format (tools/perplexity/perplexity.cpp, --kl-divergence-base), so a file
// written by either tool is read by both. Little-endian, no padding:
//
//   char[8]  "_logits_"
//   u32      n_ctx     tokens per chunk
//   i32      n_vocab
//   i32      n_chunk
//   i32      tokens[n_ctx * n_chunk]   the evaluated text
//   per chunk, n_ctx - 1 - n_ctx/2 rows of logprob_row_size(n_vocab) u16:
//            the log-probabilities after positions n_ctx/2 .. n_ctx - 2
//            (perplexity_stats.h: quantize_log_probs)
#pragma once

#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace colony {

/// What a log-probability file holds besides its rows.
struct LogprobHeader {
    uint32_t n_ctx = 0;
    int32_t n_vocab = 0;
    int32_t n_chunk = 0;
    std::vector<int32_t> tokens;  // [n_ctx * n_chunk]

    /// Rows per chunk: the positions whose next token is scored.
    size_t rows_per_chunk() const { return n_ctx - 1 - n_ctx / 2; }
};

/// Writes a log-probability file chunk by chunk.
class LogprobWriter {
  public:
    /// Creates (truncates) `path` and writes the header. Error(kResource)
    /// when it cannot be written.
    LogprobWriter(const std::string &path, const LogprobHeader &header);
    /// Appends one chunk's rows [rows_per_chunk * logprob_row_size(n_vocab)].
    /// Error(kResource) on a failed write.
    void write_chunk(std::span<const uint16_t> rows);
    /// Flushes; Error(kResource) when the data did not reach the file.
    void close();

  private:
    std::string path_;
    std::ofstream out_;
};

/// Reads a log-probability file chunk by chunk, after checking that its
/// header is consistent and that its size is exactly what the header says
/// (a file from another run, truncated or forged is refused before use).
class LogprobReader {
  public:
    /// Opens and checks `path`: Error(kNotFound) when it cannot be opened,
    /// Error(kCorrupt) for a bad magic, counts out of range (n_ctx in
    /// [4, 2^20], n_vocab in [1, 2^24], n_chunk >= 1), a token outside the
    /// vocabulary, or a size other than the header's.
    explicit LogprobReader(const std::string &path);
    const LogprobHeader &header() const { return header_; }
    /// Reads the next chunk's rows into `rows` (resized). Error(kCorrupt)
    /// past the last chunk or on a short read.
    void read_chunk(std::vector<uint16_t> &rows);

  private:
    std::string path_;
    std::ifstream in_;
    LogprobHeader header_;
    int32_t chunks_read_ = 0;
};

}  // namespace colony
