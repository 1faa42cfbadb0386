#include "model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace colony {

MappedRange::MappedRange(const std::string &path, uint64_t offset, uint64_t size, bool populate)
    : offset_(offset), size_(size) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw Error(ErrorCode::kNotFound, "cannot open " + path + ": " + std::strerror(errno));
    }
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t aligned = offset / page * page;
    skew_ = static_cast<size_t>(offset - aligned);
    map_len_ = static_cast<size_t>(size + skew_);
    if (map_len_ == 0) map_len_ = 1;
    int flags = MAP_SHARED;
#ifdef MAP_POPULATE
    if (populate) flags |= MAP_POPULATE;
#else
    (void)populate;
#endif
    // PROT_WRITE is never set: ggml only reads weights that live in a mapping.
    base_ = ::mmap(nullptr, map_len_, PROT_READ, flags, fd, static_cast<off_t>(aligned));
    const int err = errno;
    ::close(fd);
    if (base_ == MAP_FAILED) {
        base_ = nullptr;
        throw Error(ErrorCode::kResource, "mmap of " + path + " failed: " + std::strerror(err));
    }
}

MappedRange::~MappedRange() {
    if (base_) ::munmap(base_, map_len_);
}

}  // namespace colony
