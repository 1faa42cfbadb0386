// Read-only memory mapping of a byte range of a file (RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace colony {

/// Maps [offset, offset + size) of a file read-only. The mapping is page-aligned
/// internally; data() points at `offset` exactly. Throws Error(kNotFound) when
/// the file cannot be opened and Error(kResource) when mmap fails.
class MappedRange {
public:
    MappedRange(const std::string &path, uint64_t offset, uint64_t size, bool populate);
    ~MappedRange();
    MappedRange(const MappedRange &) = delete;
    MappedRange &operator=(const MappedRange &) = delete;

    const uint8_t *data() const { return static_cast<const uint8_t *>(base_) + skew_; }
    uint8_t *mutable_data() { return static_cast<uint8_t *>(base_) + skew_; }
    uint64_t offset() const { return offset_; }
    uint64_t size() const { return size_; }

private:
    void *base_ = nullptr;
    size_t map_len_ = 0;
    size_t skew_ = 0;
    uint64_t offset_ = 0;
    uint64_t size_ = 0;
};

}  // namespace colony
