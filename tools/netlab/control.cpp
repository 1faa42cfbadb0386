#include "control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "util/error.h"

namespace colony::netlab {
namespace {

sockaddr_un unix_address(const std::string &path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "control socket path '" + path + "' is empty or too long");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// The port indices that "A" names: one host, or every host for "*".
std::vector<size_t> select_ports(const Switch &sw, const std::string &word) {
    std::vector<size_t> out;
    if (word == "*") {
        for (size_t i = 0; i < sw.port_count(); ++i)
            out.push_back(i);
        return out;
    }
    size_t used = 0;
    int id = 0;
    try {
        id = std::stoi(word, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used == 0 || used != word.size()) {
        throw Error(ErrorCode::kInvalidArgument, "'" + word + "' is not a host number or *");
    }
    out.push_back(sw.port_index(id));
    return out;
}

// Every direction a->b with a in A, b in B, a != b. Throws when A and B name
// the same single host.
std::vector<std::pair<size_t, size_t>> select_directions(const Switch &sw, const std::string &a,
                                                         const std::string &b) {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t from : select_ports(sw, a)) {
        for (size_t to : select_ports(sw, b)) {
            if (from != to)
                out.emplace_back(from, to);
        }
    }
    if (out.empty())
        throw Error(ErrorCode::kInvalidArgument, "a link needs two different hosts");
    return out;
}

ControlReply execute_or_throw(Switch &sw, const std::vector<std::string> &words) {
    ControlReply reply;
    const std::string &cmd = words[0];
    if (cmd == "ping" && words.size() == 1) {
        reply.text = "ok\n";
    } else if (cmd == "show" && words.size() == 1) {
        reply.text = sw.report() + "ok\n";
    } else if (cmd == "quit" && words.size() == 1) {
        reply.text = "ok\n";
        reply.quit = true;
    } else if ((cmd == "cut" || cmd == "restore") && words.size() == 3) {
        for (auto [from, to] : select_directions(sw, words[1], words[2])) {
            sw.direction(from, to).set_cut(cmd == "cut");
        }
        reply.text = "ok\n";
    } else if (cmd == "set" && words.size() >= 4) {
        LinkParams params;
        for (size_t i = 3; i < words.size(); ++i)
            apply_setting(params, words[i]);
        validate(params);
        for (auto [from, to] : select_directions(sw, words[1], words[2])) {
            sw.direction(from, to).set_params(params);
        }
        reply.text = "ok\n";
    } else {
        throw Error(
            ErrorCode::kInvalidArgument,
            "bad request '" + cmd +
                "' (use: ping | show | quit | cut A B | restore A B | set A B key=value...)");
    }
    return reply;
}

}  // namespace

std::vector<std::string> split_words(const std::string &line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;)
        words.push_back(w);
    return words;
}

ControlReply execute_control(Switch &sw, const std::string &line) {
    const auto words = split_words(line);
    if (words.empty())
        return ControlReply{"error: empty request\n", false};
    try {
        return execute_or_throw(sw, words);
    } catch (const std::exception &e) {
        return ControlReply{std::string("error: ") + e.what() + "\n", false};
    }
}

ControlListener::ControlListener(const std::string &path) : path_(path) {
    const sockaddr_un addr = unix_address(path);
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid())
        throw Error(ErrorCode::kResource, std::string("control socket: ") + std::strerror(errno));
    unlink(path.c_str());
    if (bind(fd_.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0 ||
        listen(fd_.get(), 16) < 0) {
        throw Error(ErrorCode::kResource, "control socket " + path + ": " + std::strerror(errno));
    }
}

ControlListener::~ControlListener() {
    unlink(path_.c_str());
}

UniqueFd ControlListener::accept_one() {
    return UniqueFd(accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

std::string send_control(const std::string &path, const std::string &request, int timeout_ms) {
    const sockaddr_un addr = unix_address(path);
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        throw Error(ErrorCode::kResource, std::string("socket: ") + std::strerror(errno));
    if (connect(fd.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0) {
        throw Error(ErrorCode::kUnavailable,
                    "colony-netem control socket " + path + ": " + std::strerror(errno));
    }
    const std::string line = request + "\n";
    if (send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(line.size())) {
        throw Error(ErrorCode::kUnavailable, "writing to " + path + ": " + std::strerror(errno));
    }
    std::string reply;
    char buf[4096];
    for (;;) {
        pollfd pfd{fd.get(), POLLIN, 0};
        const int ready = poll(&pfd, 1, timeout_ms);
        if (ready == 0)
            throw Error(ErrorCode::kUnavailable, "no reply from colony-netem at " + path);
        if (ready < 0 && errno == EINTR)
            continue;
        const ssize_t n = read(fd.get(), buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        reply.append(buf, static_cast<size_t>(n));
    }
    return reply;
}

}  // namespace colony::netlab
