#include "hub/pull.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "model/gguf_check.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/hash.h"
#include "util/error.h"

namespace colony {

namespace fs = std::filesystem;

namespace {

/// Hashes the first bytes of a .part file into `hasher`.
void hash_file(const fs::path &p, Sha256Hasher &hasher, const PullOptions &o, uint64_t total) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<size_t>(in.gcount());
        hasher.update({reinterpret_cast<const uint8_t *>(buf.data()), n});
        done += n;
        if (o.progress)
            o.progress({done, total, 0, true});
    }
}

/// Appends to a file, failing with the path and errno.
class AppendFile {
  public:
    AppendFile(const fs::path &p, bool truncate)
        : path_(p), f_(std::fopen(p.c_str(), truncate ? "wb" : "ab")) {
        if (!f_)
            throw Error(ErrorCode::kResource,
                        "cannot write " + p.string() + ": " + std::strerror(errno));
    }
    ~AppendFile() {
        if (f_)
            std::fclose(f_);
    }
    void write(const char *data, size_t n) {
        if (std::fwrite(data, 1, n, f_) != n)
            throw Error(ErrorCode::kResource,
                        "writing " + path_.string() + ": " + std::strerror(errno));
    }
    void close() {
        const bool ok = std::fclose(f_) == 0;
        f_ = nullptr;
        if (!ok)
            throw Error(ErrorCode::kResource,
                        "writing " + path_.string() + ": " + std::strerror(errno));
    }

  private:
    fs::path path_;
    std::FILE *f_;
};

}  // namespace

std::string read_model_hash_record(const fs::path &model) {
    std::ifstream in(model.string() + ".sha256");
    std::string line;
    std::getline(in, line);
    return line.size() >= 64 ? line.substr(0, 64) : std::string();
}

void write_model_hash_record(const fs::path &model, const std::string &sha256_hex) {
    const fs::path p = model.string() + ".sha256";
    std::ofstream out(p, std::ios::trunc);
    out << sha256_hex << "\n";
    if (!out)
        throw Error(ErrorCode::kResource, "cannot write " + p.string());
}

fs::path default_model_cache() {
    if (const char *c = std::getenv("COLONY_MODEL_CACHE"); c && *c)
        return fs::path(c);
    if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
        return fs::path(x) / "colony" / "models";
    if (const char *h = std::getenv("HOME"); h && *h)
        return fs::path(h) / ".cache" / "colony" / "models";
    throw Error(ErrorCode::kNotFound,
                "no model cache: set XDG_CACHE_HOME or HOME, or give --cache-dir");
}

HubFileInfo resolve_ref(const Hub &hub, const ModelRef &ref) {
    std::string file = ref.file;
    if (file.empty())
        file = pick_quant_file(hub.list_files(ref.repo, ref.revision), ref.quant, ref.repo);
    return hub.stat(ref.repo, file, ref.revision);
}

PulledModel pull_model(const Hub &hub, const ModelRef &ref, const PullOptions &o) {
    PulledModel out;
    out.info = resolve_ref(hub, ref);
    const HubFileInfo &info = out.info;
    const fs::path dir = (o.cache_dir.empty() ? default_model_cache() : o.cache_dir) / info.repo;
    out.path = dir / info.file;
    const fs::path part = out.path.string() + ".part";
    std::error_code ec;
    fs::create_directories(out.path.parent_path(), ec);
    if (ec)
        throw Error(ErrorCode::kResource,
                    "cannot create " + out.path.parent_path().string() + ": " + ec.message());
    if (info.sha256.empty() && o.note)
        o.note(info.repo + "/" + info.file +
               ": the hub gives no SHA-256 (not an LFS file); it is not verified");

    // Already here: the recorded hash is the hub's (a file put here by hand is hashed once).
    if (fs::exists(out.path, ec) && fs::file_size(out.path, ec) == info.size) {
        std::string have = read_model_hash_record(out.path);
        if (have.empty() && !info.sha256.empty()) {
            have = sha256_file_hex(out.path.string());
            write_model_hash_record(out.path, have);
        }
        if (info.sha256.empty() || have == info.sha256)
            return out;
        if (o.note)
            o.note(out.path.string() + " differs from the hub's file; downloading it again");
    }

    auto hasher = std::make_unique<Sha256Hasher>();
    uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
    if (have >= info.size)  // a whole .part that failed to be renamed: check it again from scratch
        have = 0;
    if (have > 0) {
        if (o.note)
            o.note("resuming " + info.file + " at byte " + std::to_string(have) + " of " +
                   std::to_string(info.size));
        hash_file(part, *hasher, o, have);
    }
    const uint64_t resumed_from = have;
    for (int attempt = 0; have < info.size; ++attempt) {
        try {
            std::unique_ptr<AppendFile> file;
            hub.read_from(
                info, have,
                [&](uint64_t start) {
                    if (start != have) {  // the server ignored the Range: start over
                        if (o.note)
                            o.note(info.url.origin() +
                                   " ignored the Range request; downloading from the start");
                        hasher = std::make_unique<Sha256Hasher>();
                        have = 0;
                    }
                    file = std::make_unique<AppendFile>(part, have == 0);
                },
                [&](const char *data, size_t n) {
                    file->write(data, n);
                    hasher->update({reinterpret_cast<const uint8_t *>(data), n});
                    have += n;
                    out.bytes_fetched += n;
                    if (o.progress)
                        o.progress({have, info.size, resumed_from, false});
                });
            file->close();
        } catch (const Error &e) {
            if (e.code() != ErrorCode::kUnavailable || attempt >= o.retries)
                throw;
            if (o.note)
                o.note(std::string(e.what()) + "; resuming at byte " + std::to_string(have) +
                       " (try " + std::to_string(attempt + 2) + " of " +
                       std::to_string(o.retries + 1) + ")");
            std::this_thread::sleep_for(std::chrono::seconds(1 << std::min(attempt, 4)));
        }
    }
    const std::string got = to_hex(hasher->finish());
    if (!info.sha256.empty() && got != info.sha256) {
        fs::remove(part, ec);
        throw Error(ErrorCode::kCorrupt,
                    info.repo + "/" + info.file + ": SHA-256 " + got + " is not the hub's " +
                        info.sha256 + "; the download was removed (pull again to start over)");
    }
    write_model_hash_record(out.path, got);
    fs::rename(part, out.path, ec);
    if (ec)
        throw Error(ErrorCode::kResource, "cannot rename " + part.string() + ": " + ec.message());
    return out;
}

std::unique_ptr<GgufFile> fetch_gguf_header(const Hub &hub, const HubFileInfo &file,
                                            const fs::path &header_path) {
    constexpr uint64_t kMax = 256ull << 20;
    std::vector<uint8_t> bytes;
    uint64_t want = std::min<uint64_t>(file.size, 64u << 10);
    for (;;) {
        hub.read_range(file, bytes.size(), want - bytes.size(), [&](const char *data, size_t n) {
            bytes.insert(bytes.end(), data, data + n);
        });
        try {
            check_gguf_header(bytes, file.size, file.name());
            break;
        } catch (const Error &e) {
            // A header cut by the end of what we hold reads as truncated: fetch more.
            if (want >= file.size || want >= kMax)
                throw Error(ErrorCode::kCorrupt, std::string(e.what()) + " (in its first " +
                                                     std::to_string(bytes.size()) + " bytes)");
            want = std::min({file.size, kMax, want * 2});
        }
    }
    AppendFile out(header_path, true);
    out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    out.close();
    return GgufFile::open_header(header_path.string(), file.size);
}

uint64_t pull_shard(const Hub &hub, const HubFileInfo &file, LayerRange range,
                    const fs::path &out_path, const PullOptions &o) {
    if (file.sha256.empty())
        throw Error(ErrorCode::kUnsupported,
                    file.name() + ": the hub gives no SHA-256, which a shard records");
    const fs::path header = out_path.string() + ".header";
    std::unique_ptr<GgufFile> model = fetch_gguf_header(hub, file, header);
    uint64_t fetched = fs::file_size(header);
    const ModelHparams hp = ModelHparams::from_gguf(*model);
    const ModelBytesReader remote = hub.range_reader(file);
    auto counting = [&](const std::vector<ByteRange> &ranges, const ByteSink &sink) {
        remote(ranges, [&](const char *data, size_t n) {
            fetched += n;
            sink(data, n);
        });
    };
    try {
        write_shard(*model, hp, range, file.sha256, out_path.string(), counting,
                    [&](uint64_t done, uint64_t total) {
                        if (o.progress)
                            o.progress({done, total, 0, false});
                    });
    } catch (...) {
        std::error_code ec;
        fs::remove(header, ec);
        throw;
    }
    std::error_code ec;
    fs::remove(header, ec);
    return fetched;
}

}  // namespace colony
