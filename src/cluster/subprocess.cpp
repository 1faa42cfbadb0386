#include "cluster/subprocess.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string_view>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace colony {
namespace {

/// Closes a file descriptor when it goes out of scope.
struct FdCloser {
    int fd = -1;
    ~FdCloser() {
        if (fd >= 0)
            close(fd);
    }
};

/// Reads until EOF, max_bytes or the deadline; returns false on timeout.
bool read_until(int fd, std::chrono::steady_clock::time_point deadline, size_t max_bytes,
                std::string *out) {
    char buf[4096];
    while (out->size() < max_bytes) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return false;  // timed out
        if (r < 0)
            return true;  // poll failed: stop reading, let waitpid decide
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;  // EOF or error: the child is done writing
        out->append(buf, std::min(static_cast<size_t>(n), max_bytes - out->size()));
    }
    return true;
}

/// Waits for the child until the deadline; returns its status, or nullopt on
/// timeout.
std::optional<int> wait_until(pid_t pid, std::chrono::steady_clock::time_point deadline) {
    while (true) {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (std::chrono::steady_clock::now() >= deadline)
            return std::nullopt;
        usleep(2000);
    }
}

}  // namespace

std::optional<std::string> run_and_capture(const std::string &path, int timeout_ms,
                                           size_t max_bytes) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return std::nullopt;
    FdCloser read_end{fds[0]};
    FdCloser write_end{fds[1]};

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);  // its own group, so the kill reaches its children

    pid_t pid = -1;
    char *argv[] = {const_cast<char *>(path.c_str()), nullptr};
    const int rc = posix_spawn(&pid, path.c_str(), &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return std::nullopt;
    close(write_end.fd);
    write_end.fd = -1;

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string out;
    const bool in_time = read_until(read_end.fd, deadline, max_bytes, &out);
    std::optional<int> status = in_time ? wait_until(pid, deadline) : std::nullopt;
    if (!status) {
        kill(-pid, SIGKILL);  // the group this call created, nothing else
        int ignored = 0;
        waitpid(pid, &ignored, 0);
        return std::nullopt;
    }
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
        return std::nullopt;
    return out;
}

std::optional<std::string> find_executable(const std::string &command) {
    if (command.find('/') != std::string::npos) {
        if (access(command.c_str(), X_OK) == 0)
            return command;
        return std::nullopt;
    }
    const char *path = std::getenv("PATH");
    if (!path)
        return std::nullopt;
    std::string_view dirs(path);
    while (!dirs.empty()) {
        const size_t colon = dirs.find(':');
        const std::string dir(dirs.substr(0, colon));
        if (!dir.empty()) {
            const std::string candidate = dir + "/" + command;
            if (access(candidate.c_str(), X_OK) == 0)
                return candidate;
        }
        if (colon == std::string_view::npos)
            break;
        dirs.remove_prefix(colon + 1);
    }
    return std::nullopt;
}

}  // namespace colony
