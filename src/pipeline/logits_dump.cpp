#include "pipeline/logits_dump.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "pipeline/seq_samplers.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

static_assert(std::endian::native == std::endian::little,
              "the logits file is little-endian; add byte swaps for this host");

namespace {

constexpr char kMagic[4] = {'C', 'L', 'G', 'T'};
constexpr uint32_t kMaxLogits = 1u << 24;  // far above any vocabulary (a reader's sanity cap)

template <class T>
void put(std::vector<uint8_t> &buf, size_t at, T v) {
    std::memcpy(buf.data() + at, &v, sizeof v);
}

template <class T>
T get(const std::string &bytes, size_t at) {
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof v);
    return v;
}

}  // namespace

LogitsDump::LogitsDump(const std::string &path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw Error(ErrorCode::kResource,
                    "cannot open the logits file " + path + ": " + std::strerror(errno));
    }
}

LogitsDump::~LogitsDump() {
    if (fd_ >= 0)
        ::close(fd_);
}

void LogitsDump::write(int32_t seq_id, int32_t pos, int32_t token, const float *logits,
                       uint32_t n_logits) {
    if (!logits)
        n_logits = 0;
    buf_.assign(kLogitsDumpHeaderBytes + sizeof(float) * static_cast<size_t>(n_logits), 0);
    std::memcpy(buf_.data(), kMagic, sizeof kMagic);
    put(buf_, 4, kLogitsDumpVersion);
    put(buf_, 8, seq_id);
    put(buf_, 12, pos);
    put(buf_, 16, token);
    put(buf_, 20, n_logits);
    if (n_logits)
        std::memcpy(buf_.data() + kLogitsDumpHeaderBytes, logits, sizeof(float) * n_logits);
    // One write() with O_APPEND: records of different processes do not interleave.
    const ssize_t n = ::write(fd_, buf_.data(), buf_.size());
    if (n != static_cast<ssize_t>(buf_.size())) {
        COLONY_LOG_ERROR("logits file %s: short write (%zd of %zu bytes): %s", path_.c_str(), n,
                         buf_.size(), n < 0 ? std::strerror(errno) : "disk full?");
    }
}

void install_logits_dump(SequenceSamplers &samplers, std::shared_ptr<LogitsDump> dump,
                         uint32_t n_vocab) {
    if (!dump) {
        samplers.set_sample_hook({});
        return;
    }
    samplers.set_sample_hook([dump = std::move(dump), n_vocab](int32_t seq, int32_t pos,
                                                               int32_t token, const float *logits,
                                                               bool first) {
        dump->write(seq, pos, token, first ? logits : nullptr, first ? n_vocab : 0);
    });
}

std::vector<LogitsRecord> read_logits_dump(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::kNotFound, "cannot open the logits file " + path);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::vector<LogitsRecord> out;
    size_t at = 0;
    while (at < bytes.size()) {
        const std::string where = path + " at byte " + std::to_string(at);
        if (bytes.size() - at < kLogitsDumpHeaderBytes)
            throw Error(ErrorCode::kCorrupt, "truncated logits record header in " + where);
        if (std::memcmp(bytes.data() + at, kMagic, sizeof kMagic) != 0)
            throw Error(ErrorCode::kCorrupt, "not a logits record (bad magic) in " + where);
        const uint32_t version = get<uint32_t>(bytes, at + 4);
        if (version != kLogitsDumpVersion) {
            throw Error(ErrorCode::kCorrupt,
                        "logits record version " + std::to_string(version) + ", expected " +
                            std::to_string(kLogitsDumpVersion) + " in " + where);
        }
        LogitsRecord r;
        r.seq_id = get<int32_t>(bytes, at + 8);
        r.pos = get<int32_t>(bytes, at + 12);
        r.token = get<int32_t>(bytes, at + 16);
        const uint32_t n_logits = get<uint32_t>(bytes, at + 20);
        if (n_logits > kMaxLogits)
            throw Error(ErrorCode::kCorrupt,
                        "n_logits " + std::to_string(n_logits) + " in " + where);
        const size_t body = sizeof(float) * static_cast<size_t>(n_logits);
        if (bytes.size() - at - kLogitsDumpHeaderBytes < body)
            throw Error(ErrorCode::kCorrupt, "truncated logits record in " + where);
        r.logits.resize(n_logits);
        if (n_logits)
            std::memcpy(r.logits.data(), bytes.data() + at + kLogitsDumpHeaderBytes, body);
        out.push_back(std::move(r));
        at += kLogitsDumpHeaderBytes + body;
    }
    return out;
}

}  // namespace colony
