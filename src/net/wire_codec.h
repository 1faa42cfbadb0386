// Bounds-checked little-endian reader and writer for wire.cpp (internal to
// colony_net). The reader only looks at bytes in [data, data + size) and checks
// every count against the bytes left before the caller allocates for it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "net/wire.h"
#include "util/error.h"

namespace colony::wire_detail {

class WireWriter {
  public:
    explicit WireWriter(std::vector<uint8_t> &out) : out_(out) {}

    void u8(uint8_t v) { out_.push_back(v); }
    void u16(uint16_t v) { put_le(v); }
    void u32(uint32_t v) { put_le(v); }
    void u64(uint64_t v) { put_le(v); }
    void i32(int32_t v) { put_le(static_cast<uint32_t>(v)); }
    void f32(float v) {
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        put_le(bits);
    }
    void boolean(bool v) { u8(v ? 1 : 0); }
    void raw(const void *p, size_t n) {
        const auto *b = static_cast<const uint8_t *>(p);
        out_.insert(out_.end(), b, b + n);
    }
    void bytes32(const std::array<uint8_t, 32> &a) { raw(a.data(), a.size()); }
    /// u32 byte count + bytes. The caller has checked the size against a limit.
    void str(const std::string &s) {
        u32(static_cast<uint32_t>(s.size()));
        raw(s.data(), s.size());
    }

  private:
    template <class T>
    void put_le(T v) {
        for (size_t i = 0; i < sizeof(T); ++i) {
            out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
        }
    }
    std::vector<uint8_t> &out_;
};

class WireReader {
  public:
    WireReader(const uint8_t *data, size_t size) : data_(data), size_(size) {}

    size_t left() const { return size_ - off_; }

    uint8_t u8(const char *field) { return get_le<uint8_t>(field); }
    uint16_t u16(const char *field) { return get_le<uint16_t>(field); }
    uint32_t u32(const char *field) { return get_le<uint32_t>(field); }
    uint64_t u64(const char *field) { return get_le<uint64_t>(field); }
    int32_t i32(const char *field) { return static_cast<int32_t>(get_le<uint32_t>(field)); }
    float f32(const char *field) {
        const uint32_t bits = get_le<uint32_t>(field);
        float v;
        std::memcpy(&v, &bits, sizeof v);
        return v;
    }
    bool boolean(const char *field) {
        const uint8_t v = u8(field);
        if (v > 1) {
            fail(std::string(field) + " must be 0 or 1, got " + std::to_string(v));
        }
        return v == 1;
    }
    void bytes32(std::array<uint8_t, 32> &a, const char *field) { raw(a.data(), a.size(), field); }
    void raw(void *dst, size_t n, const char *field) {
        need(n, field);
        if (n != 0) {
            std::memcpy(dst, data_ + off_, n);
        }
        off_ += n;
    }
    /// Reads a u32 element count; checks count <= max and count * elem_bytes
    /// <= bytes left, so the caller may allocate count elements.
    uint32_t count(const char *field, uint32_t max, uint64_t elem_bytes) {
        const uint32_t n = u32(field);
        if (n > max) {
            fail(std::string(field) + " = " + std::to_string(n) + " exceeds the limit " +
                 std::to_string(max));
        }
        if (uint64_t(n) * elem_bytes > left()) {  // n < 2^32, elem_bytes small: no overflow
            fail(std::string(field) + " = " + std::to_string(n) + " needs " +
                 std::to_string(uint64_t(n) * elem_bytes) + " bytes, only " +
                 std::to_string(left()) + " left");
        }
        return n;
    }
    /// u32 byte count (<= max) + bytes.
    std::string str(const char *field, uint32_t max) {
        const uint32_t n = count(field, max, 1);
        std::string s(reinterpret_cast<const char *>(data_ + off_), n);
        off_ += n;
        return s;
    }
    void expect_end() {
        if (left() != 0) {
            fail(std::to_string(left()) + " trailing bytes after the payload");
        }
    }
    [[noreturn]] static void fail(const std::string &reason) {
        throw Error(ErrorCode::kProtocol, reason);
    }

  private:
    void need(size_t n, const char *field) {
        if (n > left()) {
            fail(std::string("truncated: ") + field + " needs " + std::to_string(n) +
                 " bytes at payload offset " + std::to_string(off_) + ", " +
                 std::to_string(left()) + " left");
        }
    }
    template <class T>
    T get_le(const char *field) {
        need(sizeof(T), field);
        T v = 0;
        for (size_t i = 0; i < sizeof(T); ++i) {
            v |= static_cast<T>(static_cast<T>(data_[off_ + i]) << (8 * i));
        }
        off_ += sizeof(T);
        return v;
    }

    const uint8_t *data_;
    size_t size_;
    size_t off_ = 0;
};

}  // namespace colony::wire_detail
