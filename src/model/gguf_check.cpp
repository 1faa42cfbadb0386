#include "model/gguf_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <unordered_set>

#include "ggml.h"
#include "model/gguf_check_reader.h"
#include "model/mapped_file.h"
#include "util/error.h"

namespace colony {
namespace gguf_check_detail {

const char *value_type_name(uint32_t type) {
    static const char *const kNames[] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                         "bool", "str", "arr", "u64", "i64", "f64"};
    return type < kTypeCount ? kNames[type] : "unknown";
}

const KvEntry *find_kv(const std::vector<KvEntry> &kvs, std::string_view key) {
    for (const KvEntry &kv : kvs)
        if (kv.key == key)
            return &kv;
    return nullptr;
}

}  // namespace gguf_check_detail

namespace {

using namespace gguf_check_detail;

constexpr uint32_t kDefaultAlignment = 32;           // GGUF_DEFAULT_ALIGNMENT
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, type, a u8
constexpr uint64_t kMinTensorBytes = 8 + 4 + 4 + 8;  // empty name, 0 dims, type, offset

std::string num(uint64_t v) {
    return std::to_string(v);
}

void check_counts(Reader &r, uint64_t n_tensors, uint64_t n_kv, const GgufCheckLimits &limits) {
    // Read as unsigned: gguf.cpp reads int64 and rejects negatives, which are
    // huge here and fail the same bounds.
    if (n_tensors > limits.max_tensors)
        r.fail("tensor count " + num(n_tensors) + " exceeds the limit " + num(limits.max_tensors));
    if (n_kv > limits.max_kv)
        r.fail("key/value count " + num(n_kv) + " exceeds the limit " + num(limits.max_kv));
    const uint64_t need =
        n_kv * kMinKvBytes + n_tensors * kMinTensorBytes;  // < 2^30 * 24: no overflow
    if (need > r.left())
        r.fail("header declares " + num(n_kv) + " keys and " + num(n_tensors) +
               " tensors, which need at least " + num(need) + " bytes, but " + num(r.left()) +
               " are left");
}

/// Skips one value of `type` (not an array), checking bools and string lengths.
void skip_value(Reader &r, uint32_t type, const GgufCheckLimits &limits, std::string_view key) {
    if (type == kString) {
        r.read_string("a string value", limits.max_string_bytes);
        return;
    }
    if (type == kBool) {
        const uint8_t b = r.read<uint8_t>("a bool value");
        if (b > 1)
            r.fail("key '" + std::string(key) + "': bool value " + num(b) + " is neither 0 nor 1");
        return;
    }
    r.skip(value_size(type), "a value");
}

KvEntry read_kv(Reader &r, uint64_t index, const GgufCheckLimits &limits) {
    KvEntry kv;
    kv.key = r.read_string("a key", 65535);
    if (kv.key.empty())
        r.fail("key/value " + num(index) + " has an empty key");
    kv.type = r.read<uint32_t>("a value type");
    const std::string key(kv.key);
    if (kv.type >= kTypeCount)
        r.fail("key '" + key + "' has unknown value type " + num(kv.type));
    if (kv.type != kArray) {
        kv.value_pos = r.pos();
        skip_value(r, kv.type, limits, kv.key);
        return kv;
    }
    kv.elem_type = r.read<uint32_t>("an array element type");
    if (kv.elem_type >= kTypeCount)
        r.fail("array '" + key + "' has unknown element type " + num(kv.elem_type));
    if (kv.elem_type == kArray)
        r.fail("array '" + key + "' holds arrays (nested arrays are not GGUF)");
    kv.n = r.read<uint64_t>("an array length");
    if (kv.n > limits.max_array_elements)
        r.fail("array '" + key + "' length " + num(kv.n) + " exceeds the limit " +
               num(limits.max_array_elements));
    const uint64_t min_elem = kv.elem_type == kString ? 8 : value_size(kv.elem_type);
    if (kv.n * min_elem > r.left())  // n <= 2^28, min_elem <= 8: no overflow
        r.fail("array '" + key + "' of " + num(kv.n) + " " + value_type_name(kv.elem_type) +
               " runs past the end of the file");
    kv.value_pos = r.pos();
    if (kv.elem_type == kString || kv.elem_type == kBool) {
        for (uint64_t i = 0; i < kv.n; ++i)
            skip_value(r, kv.elem_type, limits, kv.key);
    } else {
        r.skip(kv.n * min_elem, "an array");
    }
    return kv;
}

uint32_t check_alignment(Reader &r, const std::vector<KvEntry> &kvs) {
    const KvEntry *a = find_kv(kvs, "general.alignment");
    if (!a)
        return kDefaultAlignment;
    if (a->type != kU32)
        r.fail(std::string("general.alignment must be a u32, found ") + value_type_name(a->type) +
               (a->type == kArray ? " (an array)" : ""));
    uint32_t v;
    std::memcpy(&v, r.at(a->value_pos), 4);
    if (v == 0 || (v & (v - 1)) != 0)
        r.fail("general.alignment " + num(v) + " is not a power of two");
    return v;
}

// libllama's loader reads general.architecture as a string before it owns the
// file's ggml context, so a key of another type makes it throw and leak that
// context (llama-model-loader.cpp); the GGUF spec makes the key a string.
void check_architecture(Reader &r, const std::vector<KvEntry> &kvs) {
    const KvEntry *a = find_kv(kvs, "general.architecture");
    if (a && a->type != kString)
        r.fail(std::string("general.architecture must be a string, found ") +
               value_type_name(a->type) + (a->type == kArray ? " (an array)" : ""));
}

struct TensorInfo {
    std::string_view name;
    uint64_t nbytes = 0;
    uint64_t offset = 0;
};

TensorInfo read_tensor(Reader &r, uint64_t index, uint32_t alignment) {
    TensorInfo t;
    t.name = r.read_string("a tensor name", 65535);
    const std::string name = "tensor " + num(index) + " '" + std::string(t.name) + "'";
    if (t.name.size() >= GGML_MAX_NAME)
        r.fail(name + ": name of " + num(t.name.size()) + " bytes is longer than " +
               num(GGML_MAX_NAME - 1));
    const uint32_t n_dims = r.read<uint32_t>("a tensor's dimension count");
    if (n_dims > GGML_MAX_DIMS)
        r.fail(name + ": " + num(n_dims) + " dimensions (at most " + num(GGML_MAX_DIMS) + ")");
    int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
    int64_t n_elements = 1;
    for (uint32_t j = 0; j < n_dims; ++j) {
        ne[j] = r.read<int64_t>("a tensor dimension");
        if (ne[j] < 0)
            r.fail(name + ": dimension " + num(j) + " is negative (" + std::to_string(ne[j]) + ")");
        if (__builtin_mul_overflow(n_elements, ne[j], &n_elements))
            r.fail(name + ": element count overflows 64 bits");
    }
    const uint32_t type = r.read<uint32_t>("a tensor type");
    if (type >= GGML_TYPE_COUNT)
        r.fail(name + ": unknown ggml type " + num(type));
    const auto gtype = static_cast<ggml_type>(type);
    const int64_t blck = ggml_blck_size(gtype);
    const uint64_t type_size = ggml_type_size(gtype);
    if (blck <= 0 || type_size == 0)
        r.fail(name + ": ggml type " + num(type) + " is no longer supported");
    if (ne[0] % blck != 0)
        r.fail(name + ": " + std::to_string(ne[0]) + " elements per row is not a multiple of the " +
               ggml_type_name(gtype) + " block size " + std::to_string(blck));
    if (__builtin_mul_overflow(static_cast<uint64_t>(n_elements / blck), type_size, &t.nbytes))
        r.fail(name + ": byte size overflows 64 bits");
    t.offset = r.read<uint64_t>("a tensor offset");
    if (t.offset % alignment != 0)
        r.fail(name + ": data offset " + num(t.offset) + " is not a multiple of the alignment " +
               num(alignment));
    return t;
}

/// Checks every tensor's bytes lie in the data section of a file of
/// `file_size` bytes; returns the data section's offset.
uint64_t check_tensors_fit(Reader &r, const std::vector<TensorInfo> &tensors, uint32_t alignment,
                           uint64_t file_size) {
    const uint64_t info_end = r.pos();
    if (tensors.empty())
        return info_end;
    const uint64_t data_start =
        (info_end + alignment - 1) / alignment * alignment;  // info_end < 2^63
    if (data_start > file_size)
        r.fail("the data section would start at byte " + num(data_start) +
               ", past the end of the file (" + num(file_size) + " bytes)");
    const uint64_t data_size = file_size - data_start;
    for (const TensorInfo &t : tensors) {
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            r.fail("tensor '" + std::string(t.name) + "': bytes [" + num(t.offset) + ", +" +
                   num(t.nbytes) + ") lie outside the data section of " + num(data_size) +
                   " bytes; the file is truncated or corrupt");
    }
    return data_start;
}

/// check_gguf over `bytes`, the first bytes of a file of `file_size` bytes;
/// returns the data section's offset.
uint64_t check_prefix(std::span<const uint8_t> bytes, uint64_t file_size, const std::string &what,
                      const GgufCheckLimits &limits) {
    Reader r(bytes, what);
    if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
        r.fail("not a GGUF file (bad magic)");
    r.seek(4);
    const uint32_t version = r.read<uint32_t>("the version");
    if (version != 0 && (version & 0xFFFF) == 0)
        r.fail("GGUF version " + num(version) +
               " looks byte-swapped: a big-endian file, which this build cannot read");
    if (version != 2 && version != 3)
        r.fail("GGUF version " + num(version) + " is not supported (2 or 3)");
    const uint64_t n_tensors = r.read<uint64_t>("the tensor count");
    const uint64_t n_kv = r.read<uint64_t>("the key/value count");
    check_counts(r, n_tensors, n_kv, limits);

    std::vector<KvEntry> kvs;
    kvs.reserve(n_kv);
    std::unordered_set<std::string_view> keys;
    for (uint64_t i = 0; i < n_kv; ++i) {
        kvs.push_back(read_kv(r, i, limits));
        if (!keys.insert(kvs.back().key).second)
            r.fail("duplicate key '" + std::string(kvs.back().key) + "'");
    }
    const uint32_t alignment = check_alignment(r, kvs);
    check_architecture(r, kvs);

    std::vector<TensorInfo> tensors;
    tensors.reserve(n_tensors);
    std::unordered_set<std::string_view> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        tensors.push_back(read_tensor(r, i, alignment));
        if (!names.insert(tensors.back().name).second)
            r.fail("duplicate tensor name '" + std::string(tensors.back().name) + "'");
    }
    const uint64_t data_start = check_tensors_fit(r, tensors, alignment, file_size);
    check_vocab(kvs, r);
    return data_start;
}

}  // namespace

void check_gguf(std::span<const uint8_t> bytes, const std::string &what,
                const GgufCheckLimits &limits) {
    check_prefix(bytes, bytes.size(), what, limits);
}

uint64_t check_gguf_header(std::span<const uint8_t> prefix, uint64_t file_size,
                           const std::string &what, const GgufCheckLimits &limits) {
    if (prefix.size() > file_size)
        throw Error(ErrorCode::kInvalidArgument, what + ": " + std::to_string(prefix.size()) +
                                                     " bytes of a header longer than the file's " +
                                                     std::to_string(file_size));
    return check_prefix(prefix, file_size, what, limits);
}

void check_gguf_file(const std::string &path, const GgufCheckLimits &limits) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw Error(ErrorCode::kNotFound, "model file " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw Error(ErrorCode::kNotFound, path + " is not a regular file");
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size == 0)
        throw Error(ErrorCode::kCorrupt, path + ": empty file, not a GGUF file");
    const MappedRange map(path, 0, size, /*populate=*/false);
    check_gguf(std::span<const uint8_t>(map.data(), size), path, limits);
}

}  // namespace colony
