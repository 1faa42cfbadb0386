// A ZAP handler (ZeroMQ Authentication Protocol, ref: rfc.zeromq.org/spec/27)
// that admits CURVE clients whose public key is on an allow-list, one list per
// ZAP domain. libzmq asks the handler bound at inproc://zeromq.zap.01 of the
// socket's context during every CURVE handshake on a socket that has
// ZMQ_ZAP_DOMAIN set (configure_curve_server in transport.h sets it).
//
// Replies: 200 with User-Id = key_fingerprint(client key) when the key is on
// the domain's list; 400 otherwise (logged as a warning with the fingerprint,
// the peer address and the domain). Non-CURVE mechanisms are always denied.
// A received message's "User-Id" property (zmq_msg_gets) is that fingerprint:
// on the control socket it is the id of the token the worker used.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "net/keys.h"

namespace colony {

/// The reply to one ZAP request (RFC 27): status "200" with user_id =
/// key_fingerprint(client key), or "400" with an empty user_id.
struct ZapDecision {
    std::string request_id;
    std::string status = "400";
    std::string status_text = "denied";
    std::string user_id;
    std::string reason;  // why it was denied, for the log; empty when admitted
};

/// Decides a ZAP request from its frames (version "1.0", request id, domain,
/// address, identity, mechanism, credentials...): admitted only for CURVE
/// with exactly one 32-byte key frame that `is_allowed(domain, key)` accepts.
/// Pure; takes untrusted frames of any count and size.
ZapDecision zap_decide(
    const std::vector<std::string> &parts,
    const std::function<bool(const std::string &, const CurveKey &)> &is_allowed);

/// ZAP domain of the coordinator's control socket: join keys of active tokens.
constexpr const char *kZapDomainControl = "colony-control";
/// ZAP domain of data-plane sockets: member node keys and the coordinator key.
constexpr const char *kZapDomainData = "colony-data";

class ZapHandler {
  public:
    /// Binds inproc://zeromq.zap.01 in ctx and starts the handler thread; the
    /// handler is ready when the constructor returns, so sockets configured
    /// afterwards are never admitted without a check. Throws Error(kInternal)
    /// when ctx already has a ZAP handler. ctx must outlive the handler.
    explicit ZapHandler(zmq::context_t &ctx);
    /// Stops and joins the thread (within ~50 ms) and closes its socket.
    ~ZapHandler();
    ZapHandler(const ZapHandler &) = delete;
    ZapHandler &operator=(const ZapHandler &) = delete;

    /// Adds / removes a Z85 public key on a domain's list. Thread-safe; takes
    /// effect for the next handshake. allow() throws Error(kInvalidArgument)
    /// on a malformed key; remove() of an absent key does nothing.
    void allow(const std::string &domain, const std::string &public_z85);
    void remove(const std::string &domain, const std::string &public_z85);
    /// Removes every key of a domain.
    void clear(const std::string &domain);
    bool is_allowed(const std::string &domain, const CurveKey &public_key) const;
    /// The Z85 keys on a domain's list.
    std::vector<std::string> allowed(const std::string &domain) const;

    uint64_t n_admitted() const { return n_admitted_.load(); }
    uint64_t n_denied() const { return n_denied_.load(); }

  private:
    void run();
    void handle_request();

    mutable std::mutex mutex_;
    std::map<std::string, std::set<CurveKey>> allowed_;  // guarded by mutex_
    zmq::socket_t socket_;                               // used only by thread_ once it has started
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> n_admitted_{0};
    std::atomic<uint64_t> n_denied_{0};
    std::thread thread_;
};

}  // namespace colony
