#include "pipeline/shard_build.h"

#include <chrono>
#include <system_error>

#include "hub/pull.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/shard.h"
#include "net/hash.h"
#include "pipeline/shard_verify.h"
#include "util/error.h"

namespace colony {

namespace fs = std::filesystem;

fs::path find_model_file(const fs::path &dir, const std::string &model_hash_hex,
                         bool hash_unrecorded, const std::atomic<bool> *cancel) {
    std::error_code ec;
    std::vector<fs::path> unrecorded;
    for (fs::recursive_directory_iterator
             it(dir, fs::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end; it.increment(ec)) {
        const fs::path &p = it->path();
        if (!it->is_regular_file(ec) || p.extension() != ".gguf")
            continue;
        const std::string rec = read_model_hash_record(p);
        if (rec == model_hash_hex)
            return p;
        if (rec.empty())
            unrecorded.push_back(p);
    }
    if (!hash_unrecorded)
        return {};
    for (const fs::path &p : unrecorded) {
        if (cancel && *cancel)
            return {};
        try {
            const auto h = hash_file_sha256(p, {}, cancel);
            if (!h)
                return {};
            const std::string hex = to_hex(*h);
            try {
                write_model_hash_record(p, hex);
            } catch (const Error &) {
                // a read-only directory: hashed again next time
            }
            if (hex == model_hash_hex)
                return p;
        } catch (const Error &) {
            // unreadable: not the model
        }
    }
    return {};
}

ShardBuild::ShardBuild(ShardSource source, WireHash model_hash, LayerRange range, WireHash sha256,
                       uint64_t size, fs::path final_path)
    : source_(std::move(source)), final_path_(std::move(final_path)) {
    thread_ = std::thread(
        [this, model_hash, range, sha256, size] { run(model_hash, range, sha256, size); });
}

ShardBuild::~ShardBuild() {
    cancel_ = true;
    if (thread_.joinable())
        thread_.join();
}

uint64_t ShardBuild::build(const fs::path &part, const WireHash &model_hash, LayerRange range) {
    const std::string hex = to_hex(model_hash);
    auto progress = [this](uint64_t, uint64_t) {
        if (cancel_)
            throw Error(ErrorCode::kCancelled, "cancelled");
    };
    if (source_.kind == ShardSource::Kind::kLocalModel) {
        const fs::path model =
            find_model_file(source_.model_dir, hex, source_.hash_unrecorded, &cancel_);
        if (model.empty())
            throw Error(ErrorCode::kNotFound,
                        "no model file with SHA-256 " + hex + " in " + source_.model_dir.string());
        const auto file = GgufFile::open(model.string());
        write_shard(*file, ModelHparams::from_gguf(*file), range, hex, part.string(), progress);
        return 0;
    }
    const Hub hub = Hub::from_env();
    const HubFileInfo info = hub.stat_url(parse_url(source_.url));
    if (info.sha256 != hex)
        throw Error(ErrorCode::kCorrupt,
                    "the hub's file has SHA-256 " +
                        (info.sha256.empty() ? std::string("(none)") : info.sha256) +
                        ", not the model's " + hex);
    PullOptions o;
    o.progress = [&](const PullProgress &p) { progress(p.done, p.total); };
    return pull_shard(hub, info, range, part, o);
}

void ShardBuild::run(const WireHash &model_hash, LayerRange range, const WireHash &sha256,
                     uint64_t size) {
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path part = final_path_.string() + ".build";
    std::error_code ec;
    try {
        if (source_.kind == ShardSource::Kind::kHub && sha256 == WireHash{})
            throw Error(ErrorCode::kInvalidArgument,
                        "the coordinator announced no shard hash to check");
        fs::create_directories(final_path_.parent_path(), ec);
        bytes_fetched_ = build(part, model_hash, range);
        const uint64_t got_size = fs::file_size(part);
        const auto got = hash_file_sha256(part, {}, &cancel_);
        if (!got)
            throw Error(ErrorCode::kCancelled, "cancelled");
        if (sha256 != WireHash{} && (got_size != size || *got != sha256))
            throw Error(ErrorCode::kCorrupt,
                        "the shard built from " + std::string(source_.name()) + " (" +
                            std::to_string(got_size) + " bytes, SHA-256 " + to_hex(*got) +
                            ") is not the coordinator's (" + std::to_string(size) + " bytes, " +
                            to_hex(sha256) + ")");
        fs::rename(part, final_path_, ec);
        if (ec)
            throw Error(ErrorCode::kResource,
                        "cannot rename " + part.string() + ": " + ec.message());
        record_shard_hash(final_path_, *got);
        ok_ = true;
    } catch (const std::exception &e) {
        why_ = e.what();
        fs::remove(part, ec);
    }
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done_ = true;
}

}  // namespace colony
