#include "pipeline/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "util/error.h"

namespace colony {

namespace {

void redirect(int fd, const std::string &path) {
    if (path.empty())
        return;
    const int f = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f >= 0) {
        ::dup2(f, fd);
        ::close(f);
    }
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string> &argv, const std::string &stdout_path,
                           const std::string &stderr_path) {
    if (argv.empty())
        throw Error(ErrorCode::kInvalidArgument, "no program to start");
    std::vector<char *> args;
    for (const std::string &a : argv)
        args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
        throw Error(ErrorCode::kResource, std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
        // child: only async-signal-safe calls until exec
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
            ::_exit(127);  // the parent died before prctl
        redirect(STDOUT_FILENO, stdout_path);
        redirect(STDERR_FILENO, stderr_path);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
}

ChildProcess::~ChildProcess() {
    stop();
}

bool ChildProcess::running() {
    if (pid_ < 0 || exit_code_ >= 0)
        return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == 0)
        return true;
    if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
        exit_code_ = 255;  // not our child any more
    }
    return false;
}

void ChildProcess::signal(int sig) {
    if (running())
        ::kill(pid_, sig);
}

bool ChildProcess::wait(int timeout_ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (running()) {
        if (std::chrono::steady_clock::now() >= end)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

void ChildProcess::stop(int grace_ms) {
    if (!running())
        return;
    ::kill(pid_, SIGTERM);
    if (wait(grace_ms))
        return;
    ::kill(pid_, SIGKILL);
    wait(5000);
}

std::string self_executable() {
    std::error_code ec;
    const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec)
        throw Error(ErrorCode::kNotFound, "cannot find this program (/proc/self/exe)");
    return p.string();
}

uint16_t pick_free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw Error(ErrorCode::kResource, std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0;
    ::close(fd);
    if (!ok)
        throw Error(ErrorCode::kResource, std::string("bind: ") + std::strerror(errno));
    return ntohs(addr.sin_port);
}

}  // namespace colony
