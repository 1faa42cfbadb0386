// Shared by the libFuzzer targets of tests/fuzz (built by scripts/fuzz.sh with
// clang, ASan and UBSan; README.md here says how to run them).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "util/error.h"

namespace colony::fuzz {

/// Runs fn on untrusted input: a colony::Error is the expected way to refuse
/// it; any other exception escaping is a defect (the API would answer 500,
/// a worker would drop its connection), so it aborts and libFuzzer keeps the
/// input as a crash.
template <typename Fn>
void expect_clean(const char *what, Fn &&fn) {
    try {
        fn();
    } catch (const Error &) {
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s: a %s escaped: %s\n", what, typeid(e).name(), e.what());
        std::abort();
    }
}

/// The input as an anonymous in-memory file, reachable by path
/// (/proc/self/fd/N) for code that opens files by name.
class MemFile {
  public:
    MemFile(const uint8_t *data, size_t size) : fd_(memfd_create("colony-fuzz", 0)) {
        if (fd_ < 0)
            std::abort();
        size_t done = 0;
        while (done < size) {
            const ssize_t n = write(fd_, data + done, size - done);
            if (n <= 0)
                std::abort();
            done += static_cast<size_t>(n);
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~MemFile() { close(fd_); }
    MemFile(const MemFile &) = delete;
    MemFile &operator=(const MemFile &) = delete;
    const std::string &path() const { return path_; }

  private:
    int fd_;
    std::string path_;
};

}  // namespace colony::fuzz
