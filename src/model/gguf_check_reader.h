// Internal to gguf_check*.cpp: a bounds-checked little-endian reader over the
// bytes of a GGUF file, and the key/value index the checks share.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace colony::gguf_check_detail {

/// GGUF value types (gguf.h's enum gguf_type; part of the format).
enum GgufValueType : uint32_t {
    kU8 = 0,
    kI8 = 1,
    kU16 = 2,
    kI16 = 3,
    kU32 = 4,
    kI32 = 5,
    kF32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kU64 = 10,
    kI64 = 11,
    kF64 = 12,
    kTypeCount = 13,
};

/// Size in bytes of a fixed-size value type; 0 for string, array and unknown.
inline uint64_t value_size(uint32_t type) {
    switch (type) {
        case kU8:
        case kI8:
        case kBool:
            return 1;
        case kU16:
        case kI16:
            return 2;
        case kU32:
        case kI32:
        case kF32:
            return 4;
        case kU64:
        case kI64:
        case kF64:
            return 8;
        default:
            return 0;
    }
}

const char *value_type_name(uint32_t type);

/// Reads from a byte span; every read checks the bytes left first and throws
/// Error(kCorrupt, "<what>: <reason>") when they are short.
class Reader {
  public:
    Reader(std::span<const uint8_t> bytes, const std::string &what) : bytes_(bytes), what_(what) {}

    [[noreturn]] void fail(const std::string &reason) const {
        throw Error(ErrorCode::kCorrupt, what_ + ": " + reason);
    }
    uint64_t pos() const { return pos_; }
    uint64_t left() const { return bytes_.size() - pos_; }
    uint64_t size() const { return bytes_.size(); }
    void seek(uint64_t pos) { pos_ = pos; }

    template <typename T>
    T read(const char *field) {
        if (left() < sizeof(T))
            fail(std::string("truncated at ") + field + " (offset " + std::to_string(pos_) + ")");
        T v;
        std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    /// A GGUF string: u64 length then bytes; the length is checked against
    /// `max` and the bytes left before anything is copied.
    std::string_view read_string(const char *field, uint64_t max) {
        const uint64_t n = read<uint64_t>(field);
        if (n > max)
            fail(std::string(field) + " length " + std::to_string(n) + " exceeds the limit " +
                 std::to_string(max));
        if (n > left())
            fail(std::string(field) + " length " + std::to_string(n) +
                 " runs past the end of the file (" + std::to_string(left()) + " bytes left)");
        std::string_view s(reinterpret_cast<const char *>(bytes_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    void skip(uint64_t n, const char *field) {
        if (n > left())
            fail(std::string(field) + " runs past the end of the file");
        pos_ += n;
    }
    const uint8_t *at(uint64_t pos) const { return bytes_.data() + pos; }

  private:
    std::span<const uint8_t> bytes_;
    const std::string &what_;
    uint64_t pos_ = 0;
};

/// One key/value of the header, as found: for arrays `elem_type` and `n`
/// (elements), for scalars n = 1; `value_pos` is where the value (an array's
/// first element) starts.
struct KvEntry {
    std::string_view key;
    uint32_t type = 0;
    uint32_t elem_type = 0;
    uint64_t n = 1;
    uint64_t value_pos = 0;

    bool is_array_of(uint32_t t) const { return type == kArray && elem_type == t; }
    /// The element type of an array, the type of a scalar.
    uint32_t item_type() const { return type == kArray ? elem_type : type; }
};

/// Tokenizer consistency (gguf_check_vocab.cpp); `kvs` are all the header's
/// key/values. Throws through r.fail().
void check_vocab(const std::vector<KvEntry> &kvs, Reader &r);

/// The entry of `key`, or nullptr.
const KvEntry *find_kv(const std::vector<KvEntry> &kvs, std::string_view key);

}  // namespace colony::gguf_check_detail
