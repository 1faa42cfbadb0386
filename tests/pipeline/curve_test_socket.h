// A CURVE client socket for tests that talk to a coordinator or worker as an
// authenticated peer (tests/pipeline/cluster_security_test.cpp,
// cluster_fencing_test.cpp).
#pragma once

#include <string>

#include <zmq.hpp>

#include "net/keys.h"
#include "net/transport.h"

namespace colony::test {

/// A CURVE client socket of type `type` connected to endpoint.
inline zmq::socket_t curve_socket(zmq::context_t &ctx, zmq::socket_type type,
                                  const std::string &endpoint, const std::string &server_key,
                                  const CurveKeypair &keys) {
    zmq::socket_t s(ctx, type);
    configure_socket(s);
    s.set(zmq::sockopt::linger, 2000);
    configure_curve_client(s, server_key, keys);
    s.connect(endpoint);
    return s;
}

}  // namespace colony::test
