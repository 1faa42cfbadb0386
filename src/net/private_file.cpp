#include "net/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace colony {

namespace {

namespace fs = std::filesystem;

std::string errno_text() {
    return std::strerror(errno);
}

std::string mode_text(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

// Closes a file descriptor on scope exit.
class fd_guard {
  public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    fd_guard(const fd_guard &) = delete;
    fd_guard &operator=(const fd_guard &) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

void write_all(int fd, std::string_view content, const fs::path &file) {
    size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw Error(ErrorCode::kResource,
                        "cannot write " + file.string() + ": " + errno_text());
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        throw Error(ErrorCode::kResource, "cannot sync " + file.string() + ": " + errno_text());
    }
}

// Writes content to a fresh "<file>.tmp.<pid>" created O_EXCL with mode 0600;
// returns its path.
fs::path write_temp(const fs::path &file, std::string_view content) {
    const fs::path tmp = file.string() + ".tmp." + std::to_string(::getpid());
    ::unlink(tmp.c_str());  // a leftover of a crashed run of this pid
    fd_guard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
        throw Error(ErrorCode::kResource, "cannot create " + tmp.string() + ": " + errno_text());
    }
    try {
        write_all(fd.get(), content, tmp);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    return tmp;
}

}  // namespace

void ensure_private_dir(const fs::path &dir) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) {
        return;
    }
    if (fs::exists(dir, ec)) {
        throw Error(ErrorCode::kInvalidArgument, dir.string() + " exists and is not a directory");
    }
    if (dir.has_parent_path() && dir.parent_path() != dir) {
        ensure_private_dir(dir.parent_path());
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error(ErrorCode::kResource, "cannot create " + dir.string() + ": " + errno_text());
    }
}

std::string read_private_file(const fs::path &file, size_t max_bytes) {
    fd_guard fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) {
            throw Error(ErrorCode::kNotFound, file.string() + " does not exist");
        }
        if (errno == ELOOP) {
            throw Error(
                ErrorCode::kUnauthorized,
                file.string() + " is a symbolic link; refusing to read a secret through it");
        }
        throw Error(ErrorCode::kResource, "cannot open " + file.string() + ": " + errno_text());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw Error(ErrorCode::kResource, "cannot stat " + file.string() + ": " + errno_text());
    }
    if (!S_ISREG(st.st_mode)) {
        throw Error(ErrorCode::kUnauthorized, file.string() + " is not a regular file");
    }
    if (st.st_uid != ::geteuid()) {
        throw Error(ErrorCode::kUnauthorized,
                    file.string() + " is owned by uid " + std::to_string(st.st_uid) +
                        ", not by this user (uid " + std::to_string(::geteuid()) + ")");
    }
    if ((st.st_mode & 077) != 0) {
        throw Error(ErrorCode::kUnauthorized,
                    file.string() + " has mode " + mode_text(st.st_mode) +
                        ": group or others can access this secret; refusing to use it "
                        "(fix with: chmod 600 " +
                        file.string() + ", and consider it leaked)");
    }
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
        throw Error(ErrorCode::kCorrupt, file.string() + " is " + std::to_string(st.st_size) +
                                             " bytes, more than the expected " +
                                             std::to_string(max_bytes));
    }
    std::string content(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::read(fd.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw Error(ErrorCode::kResource, "cannot read " + file.string() + ": " + errno_text());
        }
        if (n == 0) {
            break;
        }
        done += static_cast<size_t>(n);
    }
    content.resize(done);
    return content;
}

void create_private_file(const fs::path &file, std::string_view content) {
    const fs::path tmp = write_temp(file, content);
    const int rc = ::link(tmp.c_str(), file.c_str());
    const int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) {
        if (err == EEXIST) {
            throw Error(ErrorCode::kInvalidArgument, file.string() + " already exists");
        }
        throw Error(ErrorCode::kResource,
                    "cannot create " + file.string() + ": " + std::strerror(err));
    }
}

void replace_private_file(const fs::path &file, std::string_view content) {
    const fs::path tmp = write_temp(file, content);
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::kResource,
                    "cannot replace " + file.string() + ": " + std::strerror(err));
    }
}

}  // namespace colony
