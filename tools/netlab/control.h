// colony-netem's control channel: a line-based text protocol on a UNIX
// stream socket, so scripts change links while traffic flows.
//
// One request line per connection; the reply is zero or more report lines
// followed by "ok" or "error: <message>". Requests ("A"/"B" are host ids or
// "*" for every host; directions are A->B only, the script does both ways):
//   ping                         -> ok
//   set A B key=value...         -> starts from profile loopback, then applies
//                                   the settings in order (see apply_setting)
//   cut A B | restore A B        -> cut or restore A->B
//   show                         -> one report line per direction, then ok
//   quit                         -> ok, then colony-netem exits
#pragma once

#include <string>
#include <vector>

#include "switch.h"
#include "unique_fd.h"

namespace colony::netlab {

/// The result of one control request.
struct ControlReply {
    std::string text;   ///< report lines (if any) and the final "ok"/"error: ..." line
    bool quit = false;  ///< the request asked colony-netem to exit
};

/// Executes one request line against `sw`. Never throws: a bad request is
/// answered with "error: <message>" and changes nothing.
ControlReply execute_control(Switch &sw, const std::string &line);

/// The listening UNIX socket at a filesystem path (so it is reachable from
/// every network namespace). Removes a stale socket file first and the file
/// again on destruction.
class ControlListener {
  public:
    /// Throws colony::Error(kResource) when the socket cannot be created.
    explicit ControlListener(const std::string &path);
    ~ControlListener();
    ControlListener(const ControlListener &) = delete;
    ControlListener &operator=(const ControlListener &) = delete;

    int fd() const { return fd_.get(); }

    /// Accepts one pending connection (non-blocking); returns an invalid fd
    /// when none is waiting.
    UniqueFd accept_one();

  private:
    std::string path_;
    UniqueFd fd_;
};

/// Client side: sends `request` to the control socket at `path`, waits up to
/// `timeout_ms` for the whole reply and returns it. Throws
/// colony::Error(kUnavailable) when nothing listens or the reply times out.
std::string send_control(const std::string &path, const std::string &request, int timeout_ms);

/// Splits a request line on blanks.
std::vector<std::string> split_words(const std::string &line);

}  // namespace colony::netlab
