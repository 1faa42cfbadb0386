#include "pipeline/stage_host.h"

#include <chrono>
#include <tuple>

#include "model/gguf_file.h"
#include "net/transport.h"
#include "pipeline/logits_dump.h"
#include "runtime/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/trace.h"

namespace colony {

namespace {

constexpr int kSendTimeoutMs = 2000;

bool same_config(const StageConfig &a, const StageConfig &b) {
    return a.range == b.range && a.n_ctx == b.n_ctx && a.n_seq_max == b.n_seq_max &&
           a.n_ctx_seq == b.n_ctx_seq && a.n_ubatch == b.n_ubatch && a.type_k == b.type_k &&
           a.type_v == b.type_v && a.n_threads == b.n_threads && a.cpu == b.cpu &&
           a.load.use_mmap == b.load.use_mmap && a.load.use_repack == b.load.use_repack &&
           a.load.skip == b.load.skip && a.dyn_skip == b.dyn_skip && a.invariance == b.invariance;
}

double ms_between(std::chrono::steady_clock::time_point a,
                  std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

bool StageHost::holds(const std::string &path, const StageConfig &cfg) const {
    return stage_ && path_ == path && same_config(cfg_, cfg);
}

void StageHost::load(const std::string &path, std::shared_ptr<const GgufFile> file,
                     const ModelHparams &hp, const StageConfig &cfg) {
    unload();
    StageConfig c = cfg;
    const LayerRange range = cfg.range;
    auto outer = cfg.load.progress;
    c.load.progress = [this, range, outer](uint64_t done, uint64_t total) {
        meter_.loading(range, total ? static_cast<double>(done) / total : 0.0);
        if (outer)
            outer(done, total);
    };
    meter_.loading(range, 0);
    try {
        stage_ = std::make_unique<Stage>(file, hp, c);
    } catch (...) {
        meter_.unloaded();
        throw;
    }
    file_ = std::move(file);
    path_ = path;
    cfg_ = cfg;
    set_thread_limit(thread_limit_);
    n_vocab_ = hp.n_vocab;
    make_samplers(n_vocab_);
    meter_.loaded(*stage_);
}

void StageHost::reset() {
    if (!stage_)
        return;
    for (uint32_t s = 0; s < cfg_.n_seq_max; ++s)
        stage_->seq_rm(static_cast<int32_t>(s));
    make_samplers(n_vocab_);
    meter_.loaded(*stage_);
}

void StageHost::unload() {
    close_link();
    if (stage_)
        meter_.unloaded();
    stage_.reset();
    samplers_.reset();
    vocab_.reset();
    file_.reset();
    path_.clear();
}

void StageHost::make_samplers(uint32_t n_vocab) {
    samplers_ = std::make_unique<SequenceSamplers>(
        static_cast<int32_t>(n_vocab), [this]() -> const llama_vocab * {
            if (!vocab_ && !path_.empty())
                vocab_ = std::make_unique<Tokenizer>(path_);  // vocab_only: no weights read
            return vocab_ ? vocab_->vocab() : nullptr;
        });
    if (stage_ && stage_->is_last() && logits_dump_)
        install_logits_dump(*samplers_, logits_dump_, n_vocab);
}

void StageHost::set_logits_dump(std::shared_ptr<LogitsDump> dump) {
    logits_dump_ = std::move(dump);
    if (samplers_ && stage_ && stage_->is_last())
        install_logits_dump(*samplers_, logits_dump_, n_vocab_);
}

void StageHost::set_thread_limit(int n) {
    thread_limit_ = n;
    if (!stage_)
        return;
    const int want = n > 0 ? std::min(n, stage_->config().n_threads) : stage_->config().n_threads;
    if (stage_->n_threads() != want)
        stage_->set_n_threads(want);
}

void StageHost::set_slowdown(double factor) {
    cfg_.slowdown = factor;
    if (stage_ && stage_->slowdown() != factor)
        stage_->set_slowdown(factor);
}

void StageHost::open_link(zmq::context_t &ctx, const std::string &endpoint,
                          const std::string &server_key_z85, const CurveKeypair &node_keys,
                          bool connect_now) {
    close_link();
    push_ = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::push);
    configure_socket(*push_, data_link_transport());
    watch_ = std::make_unique<LinkWatch>(ctx, *push_);
    push_->set(zmq::sockopt::sndtimeo, kSendTimeoutMs);
    if (server_key_z85.empty()) {
        configure_insecure(*push_, "data client (to the next stage)");
    } else {
        configure_curve_client(*push_, server_key_z85, node_keys);
    }
    link_endpoint_ = endpoint;
    link_connected_ = false;
    sender_.renew();  // a new link: the next stage sees a new session
    if (connect_now) {
        push_->connect(endpoint);
        watch_->connecting();
        link_connected_ = true;
    }
}

void StageHost::close_link() {
    watch_.reset();
    push_.reset();
    link_endpoint_.clear();
    link_connected_ = false;
}

std::optional<int64_t> StageHost::link_down_ms() {
    const std::optional<int64_t> down = watch_ ? watch_->down_ms() : std::nullopt;
    if (down || link_was_down_)  // the meter's lock only while down and once when back
        meter_.record_link(down.value_or(0));
    link_was_down_ = down.has_value();
    return down;
}

void StageHost::link_expected() {
    if (watch_ && link_connected_ && !watch_->was_up())
        watch_->connecting();
}

HostStep StageHost::step(const WireActivations &in, WireDtype out_dtype) {
    const auto t0 = std::chrono::steady_clock::now();
    HostStep r{run_stage_step(*stage_, in, out_dtype, *samplers_), 0};
    const auto t1 = std::chrono::steady_clock::now();
    r.compute_ms = ms_between(t0, t1);
    meter_.record_step(*stage_, r.compute_ms / 1000.0, static_cast<uint32_t>(in.outputs.size()));
    return r;
}

bool StageHost::send(WireBody body, const char *to, uint64_t request_id) {
    if (!push_) {
        COLONY_LOG_WARN("stage: no link to %s; %s dropped", to,
                        wire_type_name(static_cast<WireType>(body.index() + 1)));
        return false;
    }
    const auto t0 = std::chrono::steady_clock::now();
    TraceSpan span("send", "hop");
    const bool hop = std::holds_alternative<WireActivations>(body);
    WireMessage msg;
    std::tie(msg.session, msg.sequence) = sender_.next();
    msg.request_id = request_id;
    msg.body = std::move(body);
    bool sent = false;
    try {
        if (!link_connected_) {
            push_->connect(link_endpoint_);
            watch_->connecting();
            link_connected_ = true;
        }
        const std::vector<uint8_t> frame = wire_encode(msg);
        if (push_->send(zmq::buffer(frame), zmq::send_flags::none)) {
            bytes_sent_.fetch_add(frame.size());
            sent = true;
            if (span.active()) {
                span.set_args(std::string("{\"type\":\"") + wire_type_name(wire_message_type(msg)) +
                              "\",\"bytes\":" + std::to_string(frame.size()) +
                              ",\"request\":" + std::to_string(request_id) + "}");
            }
        } else {
            COLONY_LOG_WARN("stage: sending %s to %s timed out; dropped",
                            wire_type_name(wire_message_type(msg)), to);
        }
    } catch (const Error &e) {
        COLONY_LOG_WARN("stage: %s to %s: %s", wire_type_name(wire_message_type(msg)), to,
                        e.what());
    } catch (const zmq::error_t &e) {
        COLONY_LOG_WARN("stage: send to %s: %s", to, e.what());
    }
    if (hop)
        meter_.record_hop(ms_between(t0, std::chrono::steady_clock::now()) / 1000.0);
    return sent;
}

void StageHost::release(int32_t seq, int32_t p0, uint32_t n_seq_max) {
    if (!stage_)
        return;
    for (uint32_t s = 0; s < n_seq_max; ++s) {
        if (seq >= 0 && static_cast<uint32_t>(seq) != s)
            continue;
        stage_->seq_rm(static_cast<int32_t>(s), p0);
        if (p0 == 0 && samplers_)
            samplers_->release(static_cast<int32_t>(s));
    }
    meter_.record_kv(*stage_);
}

void StageHost::shift(const WireSeqShift &s, uint32_t n_seq_max) {
    if (!stage_)
        return;
    if (s.seq_id < 0 || static_cast<uint32_t>(s.seq_id) >= n_seq_max)
        throw Error(ErrorCode::kProtocol, "SEQ_SHIFT of sequence " + std::to_string(s.seq_id) +
                                              " outside [0, " + std::to_string(n_seq_max) + ")");
    stage_->apply_shift(s.seq_id, KvShift{s.p0, s.n_discard, s.n_past});
    meter_.record_kv(*stage_);
}

}  // namespace colony
