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
    // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
    const bool well_formed = parts.size() >= 6 && frame_text(parts[0]) == "1.0";
    const std::string request_id = parts.size() > 1 ? frame_text(parts[1]) : "";
    const std::string domain = parts.size() > 2 ? frame_text(parts[2]) : "";
    const std::string address = parts.size() > 3 ? frame_text(parts[3]) : "";
    const std::string mechanism = parts.size() > 5 ? frame_text(parts[5]) : "";

    std::string status = "400";
    std::string status_text = "denied";
    std::string user_id;
    if (!well_formed) {
        COLONY_LOG_WARN("zap: malformed ZAP request (%zu parts), denied", parts.size());
    } else if (mechanism != "CURVE" || parts.size() != 7 || parts[6].size() != 32) {
        COLONY_LOG_WARN("zap: denied a %s peer from %s in domain %s: only CURVE is admitted",
                        mechanism.c_str(), address.c_str(), domain.c_str());
    } else {
        CurveKey key{};
        std::memcpy(key.data(), parts[6].data(), key.size());
        const std::string fingerprint = key_fingerprint(key);
        if (is_allowed(domain, key)) {
            status = "200";
            status_text = "OK";
            user_id = fingerprint;
        } else {
            COLONY_LOG_WARN("zap: denied CURVE key %s from %s in domain %s: not on the allow-list",
                            fingerprint.c_str(), address.c_str(), domain.c_str());
        }
    }
    (status == "200" ? n_admitted_ : n_denied_).fetch_add(1);

    const std::array<std::string, 6> reply = {"1.0", request_id, status, status_text, user_id, ""};
    for (size_t i = 0; i < reply.size(); ++i) {
        socket_.send(zmq::buffer(reply[i]),
                     i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
}

}  // namespace colony
