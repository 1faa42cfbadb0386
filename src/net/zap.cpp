#include "net/zap.h"

#include <array>
#include <cstring>
#include <string_view>

#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace {

constexpr const char *kZapEndpoint = "inproc://zeromq.zap.01";
constexpr size_t kMaxRequestParts = 8;  // CURVE sends 7 (RFC 27)

std::string frame_text(const zmq::message_t &m) {
    return m.to_string();
}

}  // namespace

ZapDecision zap_decide(
    const std::vector<std::string> &parts,
    const std::function<bool(const std::string &, const CurveKey &)> &is_allowed) {
    // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
    ZapDecision d;
    const bool well_formed = parts.size() >= 6 && parts[0] == "1.0";
    d.request_id = parts.size() > 1 ? parts[1] : "";
    const std::string domain = parts.size() > 2 ? parts[2] : "";
    const std::string address = parts.size() > 3 ? parts[3] : "";
    const std::string mechanism = parts.size() > 5 ? parts[5] : "";
    if (!well_formed) {
        d.reason = "malformed ZAP request (" + std::to_string(parts.size()) + " parts), denied";
    } else if (mechanism != "CURVE" || parts.size() != 7 || parts[6].size() != 32) {
        d.reason = "denied a " + mechanism + " peer from " + address + " in domain " + domain +
                   ": only CURVE is admitted";
    } else {
        CurveKey key{};
        std::memcpy(key.data(), parts[6].data(), key.size());
        const std::string fingerprint = key_fingerprint(key);
        if (is_allowed(domain, key)) {
            d.status = "200";
            d.status_text = "OK";
            d.user_id = fingerprint;
        } else {
            d.reason = "denied CURVE key " + fingerprint + " from " + address + " in domain " +
                       domain + ": not on the allow-list";
        }
    }
    return d;
}

ZapHandler::ZapHandler(zmq::context_t &ctx) : socket_(ctx, zmq::socket_type::rep) {
    socket_.set(zmq::sockopt::linger, 0);
    try {
        socket_.bind(kZapEndpoint);
    } catch (const zmq::error_t &e) {
        throw Error(ErrorCode::kInternal, std::string("cannot start the ZAP handler: ") + e.what() +
                                              " (does this context already have one?)");
    }
    thread_ = std::thread([this] { run(); });
}

ZapHandler::~ZapHandler() {
    stop_.store(true);
    if (thread_.joinable()) {
        thread_.join();
    }
}

void ZapHandler::allow(const std::string &domain, const std::string &public_z85) {
    const CurveKey key = curve_key_from_z85(public_z85);
    std::lock_guard<std::mutex> lock(mutex_);
    allowed_[domain].insert(key);
}

void ZapHandler::remove(const std::string &domain, const std::string &public_z85) {
    const CurveKey key = curve_key_from_z85(public_z85);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = allowed_.find(domain);
    if (it != allowed_.end()) {
        it->second.erase(key);
    }
}

void ZapHandler::clear(const std::string &domain) {
    std::lock_guard<std::mutex> lock(mutex_);
    allowed_.erase(domain);
}

bool ZapHandler::is_allowed(const std::string &domain, const CurveKey &public_key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = allowed_.find(domain);
    return it != allowed_.end() && it->second.count(public_key) != 0;
}

std::vector<std::string> ZapHandler::allowed(const std::string &domain) const {
    std::vector<std::string> keys;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = allowed_.find(domain);
    if (it != allowed_.end()) {
        for (const CurveKey &k : it->second) {
            keys.push_back(curve_key_to_z85(k));
        }
    }
    return keys;
}

void ZapHandler::run() {
    while (!stop_.load()) {
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        try {
            if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) > 0) {
                handle_request();
            }
        } catch (const zmq::error_t &e) {
            if (e.num() == ETERM) {
                return;
            }
            COLONY_LOG_ERROR("zap: %s", e.what());
        }
    }
}

void ZapHandler::handle_request() {
    std::vector<zmq::message_t> parts;
    do {
        zmq::message_t part;
        if (!socket_.recv(part, zmq::recv_flags::none)) {
            return;
        }
        parts.push_back(std::move(part));
    } while (parts.back().more() && parts.size() < kMaxRequestParts);
    while (parts.back().more()) {  // drain an over-long request; it gets a 400
        zmq::message_t extra;
        (void)socket_.recv(extra, zmq::recv_flags::none);
        if (!extra.more()) {
            break;
        }
    }
    std::vector<std::string> texts;
    texts.reserve(parts.size());
    for (const zmq::message_t &p : parts)
        texts.push_back(frame_text(p));
    const ZapDecision d = zap_decide(texts, [this](const std::string &domain, const CurveKey &key) {
        return is_allowed(domain, key);
    });
    if (!d.reason.empty())
        COLONY_LOG_WARN("zap: %s", d.reason.c_str());
    (d.status == "200" ? n_admitted_ : n_denied_).fetch_add(1);

    const std::array<std::string, 6> reply = {"1.0",         d.request_id, d.status,
                                              d.status_text, d.user_id,    ""};
    for (size_t i = 0; i < reply.size(); ++i) {
        socket_.send(zmq::buffer(reply[i]),
                     i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
}

}  // namespace colony
