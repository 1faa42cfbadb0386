#include "runtime/logprob_file.h"

#include <cstring>
#include <filesystem>

#include "runtime/perplexity_stats.h"
#include "util/error.h"

namespace colony {
namespace {

constexpr char kMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
constexpr uint32_t kMaxCtx = 1u << 20;
constexpr int32_t kMaxVocab = 1 << 24;

template <typename T>
void put(std::ofstream &out, const T &v) {
    out.write(reinterpret_cast<const char *>(&v), sizeof(T));
}

template <typename T>
T get(std::ifstream &in) {
    T v{};
    in.read(reinterpret_cast<char *>(&v), sizeof(T));
    return v;
}

size_t chunk_bytes(const LogprobHeader &h) {
    return h.rows_per_chunk() * logprob_row_size(h.n_vocab) * sizeof(uint16_t);
}

}  // namespace

LogprobWriter::LogprobWriter(const std::string &path, const LogprobHeader &h)
    : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_)
        throw Error(ErrorCode::kResource, path + ": cannot be written");
    out_.write(kMagic, sizeof kMagic);
    put(out_, h.n_ctx);
    put(out_, h.n_vocab);
    put(out_, h.n_chunk);
    out_.write(reinterpret_cast<const char *>(h.tokens.data()),
               static_cast<std::streamsize>(h.tokens.size() * sizeof(int32_t)));
    if (!out_)
        throw Error(ErrorCode::kResource, path + ": write failed");
}

void LogprobWriter::write_chunk(std::span<const uint16_t> rows) {
    out_.write(reinterpret_cast<const char *>(rows.data()),
               static_cast<std::streamsize>(rows.size_bytes()));
    if (!out_)
        throw Error(ErrorCode::kResource, path_ + ": write failed");
}

void LogprobWriter::close() {
    out_.close();
    if (out_.fail())
        throw Error(ErrorCode::kResource, path_ + ": write failed");
}

LogprobReader::LogprobReader(const std::string &path) : path_(path), in_(path, std::ios::binary) {
    if (!in_)
        throw Error(ErrorCode::kNotFound, path + ": cannot be opened");
    auto corrupt = [&](const std::string &why) {
        return Error(ErrorCode::kCorrupt, path +
                                              ": not a log-probability file of "
                                              "llama-perplexity --kl-divergence-base (" +
                                              why + ")");
    };
    char magic[8] = {};
    in_.read(magic, sizeof magic);
    if (!in_ || std::memcmp(magic, kMagic, sizeof magic) != 0)
        throw corrupt("no \"_logits_\" magic");
    LogprobHeader &h = header_;
    h.n_ctx = get<uint32_t>(in_);
    h.n_vocab = get<int32_t>(in_);
    h.n_chunk = get<int32_t>(in_);
    if (!in_)
        throw corrupt("truncated header");
    if (h.n_ctx < 4 || h.n_ctx > kMaxCtx)
        throw corrupt("n_ctx " + std::to_string(h.n_ctx) + " outside [4, 2^20]");
    if (h.n_vocab < 1 || h.n_vocab > kMaxVocab)
        throw corrupt("n_vocab " + std::to_string(h.n_vocab) + " outside [1, 2^24]");
    if (h.n_chunk < 1)
        throw corrupt("n_chunk " + std::to_string(h.n_chunk));
    // Sizes in 64 bits: n_ctx <= 2^20 and rows of <= 2^24 + 4 u16 bound each
    // product well below 2^64 for any n_chunk < 2^31.
    const uint64_t n_tokens = uint64_t{h.n_ctx} * static_cast<uint64_t>(h.n_chunk);
    const uint64_t expected = sizeof kMagic + 12 + n_tokens * sizeof(int32_t) +
                              static_cast<uint64_t>(h.n_chunk) * chunk_bytes(h);
    std::error_code ec;
    const uint64_t actual = std::filesystem::file_size(path, ec);
    if (ec || actual != expected) {
        throw corrupt("size " + std::to_string(actual) + " bytes, the header says " +
                      std::to_string(expected));
    }
    h.tokens.resize(n_tokens);
    in_.read(reinterpret_cast<char *>(h.tokens.data()),
             static_cast<std::streamsize>(n_tokens * sizeof(int32_t)));
    if (!in_)
        throw corrupt("truncated tokens");
    for (size_t i = 0; i < h.tokens.size(); ++i) {
        if (h.tokens[i] < 0 || h.tokens[i] >= h.n_vocab)
            throw corrupt("token " + std::to_string(h.tokens[i]) + " at " + std::to_string(i) +
                          " outside the vocabulary");
    }
}

void LogprobReader::read_chunk(std::vector<uint16_t> &rows) {
    if (chunks_read_ >= header_.n_chunk)
        throw Error(ErrorCode::kCorrupt, path_ + ": read past the last chunk");
    rows.resize(chunk_bytes(header_) / sizeof(uint16_t));
    in_.read(reinterpret_cast<char *>(rows.data()),
             static_cast<std::streamsize>(rows.size() * sizeof(uint16_t)));
    if (!in_)
        throw Error(ErrorCode::kCorrupt,
                    path_ + ": short read in chunk " + std::to_string(chunks_read_ + 1));
    ++chunks_read_;
}

}  // namespace colony
