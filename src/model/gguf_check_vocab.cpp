// Tokenizer consistency of a GGUF header, as libllama's vocabulary loader
// (src/llama-vocab.cpp, llama_vocab::impl::load in the pinned tree) assumes it:
// it indexes scores and token types by token id, keys tokens by their text
// (and asserts that no two tokens share one), and disables special ids outside
// the vocabulary, which later trips an assert when the tokenizer adds them.
#include <string>
#include <unordered_set>

#include "model/gguf_check_reader.h"

namespace colony::gguf_check_detail {
namespace {

std::string num(uint64_t v) {
    return std::to_string(v);
}

/// The token strings, keyed as libllama keys them: it reads each through a C
/// string (gguf_get_arr_str), so the text ends at the first NUL, and names an
/// empty one "[EMPTY_<id>]".
void check_tokens_unique(const KvEntry &tokens, Reader &r) {
    std::unordered_set<std::string> seen;
    seen.reserve(tokens.n);
    const uint64_t saved = r.pos();
    r.seek(tokens.value_pos);
    for (uint64_t i = 0; i < tokens.n; ++i) {
        std::string_view bytes = r.read_string("a token", UINT64_MAX);
        std::string text(bytes.substr(0, bytes.find('\0')));
        if (text.empty())
            text = "[EMPTY_" + num(i) + "]";  // llama-vocab.cpp does the same
        if (!seen.insert(std::move(text)).second)
            r.fail("tokenizer.ggml.tokens: token " + num(i) +
                   " repeats the text of an earlier token (every token text must be unique)");
    }
    r.seek(saved);
}

void check_per_token_array(const std::vector<KvEntry> &kvs, Reader &r, const char *key,
                           uint64_t n_tokens, bool allow_i32_or_f32) {
    const KvEntry *kv = find_kv(kvs, key);
    if (!kv)
        return;
    const bool type_ok =
        allow_i32_or_f32 ? (kv->is_array_of(kF32) || kv->is_array_of(kI32)) : kv->is_array_of(kI32);
    if (!type_ok)
        r.fail(std::string(key) + " must be an array of " + (allow_i32_or_f32 ? "f32" : "i32") +
               ", found " +
               (kv->type == kArray ? std::string("an array of ") + value_type_name(kv->elem_type)
                                   : std::string(value_type_name(kv->type))));
    if (kv->n != n_tokens)
        r.fail(std::string(key) + " has " + num(kv->n) + " entries for " + num(n_tokens) +
               " tokens");
}

bool is_integer(uint32_t type) {
    return type == kU8 || type == kI8 || type == kU16 || type == kI16 || type == kU32 ||
           type == kI32 || type == kU64 || type == kI64;
}

int64_t read_integer(const KvEntry &kv, Reader &r) {
    const uint8_t *p = r.at(kv.value_pos);
    auto get = [p](auto v) {
        std::memcpy(&v, p, sizeof(v));
        return static_cast<int64_t>(v);
    };
    switch (kv.type) {
        case kU8:
            return get(uint8_t{});
        case kI8:
            return get(int8_t{});
        case kU16:
            return get(uint16_t{});
        case kI16:
            return get(int16_t{});
        case kU32:
            return get(uint32_t{});
        case kI32:
            return get(int32_t{});
        case kI64:
            return get(int64_t{});
        default: {
            uint64_t v;
            std::memcpy(&v, p, 8);
            return v > INT64_MAX ? -1 : static_cast<int64_t>(v);
        }
    }
}

bool read_bool(const std::vector<KvEntry> &kvs, Reader &r, std::string_view key, bool fallback) {
    const KvEntry *kv = find_kv(kvs, key);
    if (!kv || kv->type != kBool)
        return fallback;
    return *r.at(kv->value_pos) != 0;
}

/// tokenizer.ggml.<name>_token_id keys must be integers. libllama disables an
/// id outside the vocabulary, and then asserts when the tokenizer adds BOS or
/// EOS: those two must name a token when they are added (BOS unless
/// add_bos_token is false, EOS when add_eos_token is true).
void check_special_ids(const std::vector<KvEntry> &kvs, Reader &r, uint64_t n_tokens) {
    constexpr std::string_view kPrefix = "tokenizer.ggml.";
    constexpr std::string_view kSuffix = "_token_id";
    const bool add_bos = read_bool(kvs, r, "tokenizer.ggml.add_bos_token", true);
    const bool add_eos = read_bool(kvs, r, "tokenizer.ggml.add_eos_token", false);
    for (const KvEntry &kv : kvs) {
        const std::string_view k = kv.key;
        if (k.size() <= kPrefix.size() + kSuffix.size() || k.substr(0, kPrefix.size()) != kPrefix ||
            k.substr(k.size() - kSuffix.size()) != kSuffix)
            continue;
        if (!is_integer(kv.type))
            r.fail(std::string(k) + " must be an integer, found " + value_type_name(kv.type));
        const bool added = (k == "tokenizer.ggml.bos_token_id" && add_bos) ||
                           (k == "tokenizer.ggml.eos_token_id" && add_eos);
        const int64_t id = read_integer(kv, r);
        if (added && (id < 0 || static_cast<uint64_t>(id) >= n_tokens))
            r.fail(std::string(k) + " = " + std::to_string(id) + " is outside the vocabulary of " +
                   num(n_tokens) + " tokens, and the tokenizer adds it to every prompt");
    }
}

}  // namespace

void check_vocab(const std::vector<KvEntry> &kvs, Reader &r) {
    const KvEntry *tokens = find_kv(kvs, "tokenizer.ggml.tokens");
    if (!tokens)
        return;  // no vocabulary: libllama refuses the file with its own error
    if (!tokens->is_array_of(kString))
        r.fail(std::string("tokenizer.ggml.tokens must be an array of strings, found ") +
               (tokens->type == kArray
                    ? std::string("an array of ") + value_type_name(tokens->elem_type)
                    : std::string(value_type_name(tokens->type))));
    if (tokens->n == 0)
        r.fail("tokenizer.ggml.tokens is empty");
    if (tokens->n > INT32_MAX)
        r.fail("tokenizer.ggml.tokens has more tokens than a token id can name");
    check_tokens_unique(*tokens, r);
    check_per_token_array(kvs, r, "tokenizer.ggml.scores", tokens->n, /*allow_i32_or_f32=*/true);
    check_per_token_array(kvs, r, "tokenizer.ggml.token_type", tokens->n,
                          /*allow_i32_or_f32=*/false);
    if (const KvEntry *merges = find_kv(kvs, "tokenizer.ggml.merges");
        merges && !merges->is_array_of(kString))
        r.fail("tokenizer.ggml.merges must be an array of strings");
    check_special_ids(kvs, r, tokens->n);
}

}  // namespace colony::gguf_check_detail
