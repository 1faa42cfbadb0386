#include "runtime/tokenizer.h"

#include "llama.h"
#include "model/gguf_check.h"
#include "util/error.h"

namespace colony {

Tokenizer::Tokenizer(const std::string &path) {
    llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    check_gguf_file(path);  // libllama aborts on some malformed vocabularies (gguf_check.h)
    model_ = llama_model_load_from_file(path.c_str(), params);
    if (!model_)
        throw Error(ErrorCode::kCorrupt, path + ": libllama could not load the vocabulary");
    vocab_ = llama_model_get_vocab(model_);
    try {
        check_special_tokens(path);
    } catch (...) {
        llama_model_free(model_);  // the destructor does not run for a throwing constructor
        throw;
    }
    if (const char *tmpl = llama_model_chat_template(model_, nullptr))
        chat_template_ = tmpl;
}

void Tokenizer::check_special_tokens(const std::string &path) const {
    // libllama's tokenize asserts (llama-vocab.cpp, llama_vocab::impl::tokenize
    // and the BPE session's append_bos/append_eos) when a token it adds is
    // missing: BOS and EOS when add_bos/add_eos, and BOS and SEP always for a
    // WPM vocabulary. A missing id is LLAMA_TOKEN_NULL after the load, whether
    // the file's key was out of range or the tokenizer type's default was
    // (found by fuzz_gguf: a one-token "llama" vocabulary without
    // bos_token_id, whose default BOS id 1 libllama disabled).
    const bool wpm = llama_vocab_type(vocab_) == LLAMA_VOCAB_TYPE_WPM;
    auto need = [&](bool added, llama_token id, const char *what) {
        if (added && id == LLAMA_TOKEN_NULL)
            throw Error(ErrorCode::kCorrupt,
                        path + ": the tokenizer adds a " + what +
                            " token to every prompt, but the vocabulary has none");
    };
    need(wpm || llama_vocab_get_add_bos(vocab_), llama_vocab_bos(vocab_), "BOS");
    need(llama_vocab_get_add_eos(vocab_), llama_vocab_eos(vocab_), "EOS");
    need(wpm, llama_vocab_sep(vocab_), "SEP");
}

Tokenizer::~Tokenizer() {
    if (model_)
        llama_model_free(model_);
}

namespace {

/// Runs a libllama vocabulary call: libllama throws std::exception from some
/// of them on vocabularies that load but are incomplete (e.g. an SPM
/// vocabulary without the byte tokens its fallback looks up with
/// unordered_map::at); colony reports Error(kCorrupt) instead.
template <typename Fn>
auto vocab_call(const char *what, Fn &&fn) {
    try {
        return fn();
    } catch (const Error &) {
        throw;
    } catch (const std::exception &e) {
        throw Error(ErrorCode::kCorrupt,
                    std::string("the model's vocabulary is incomplete: libllama failed to ") +
                        what + ": " + e.what());
    }
}

}  // namespace

std::vector<int32_t> Tokenizer::tokenize(const std::string &text, bool add_special,
                                         bool parse_special) const {
    return vocab_call("tokenize",
                      [&] { return tokenize_unchecked(text, add_special, parse_special); });
}

std::vector<int32_t> Tokenizer::tokenize_unchecked(const std::string &text, bool add_special,
                                                   bool parse_special) const {
    std::vector<int32_t> out(text.size() + 8);
    int32_t n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                               static_cast<int32_t>(out.size()), add_special, parse_special);
    if (n < 0) {
        out.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                           static_cast<int32_t>(out.size()), add_special, parse_special);
    }
    if (n < 0)
        throw Error(ErrorCode::kInvalidArgument, "tokenization failed");
    out.resize(static_cast<size_t>(n));
    return out;
}

namespace {

std::string token_text(const llama_vocab *vocab, int32_t token, bool special) {
    char buf[256];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, special);
    if (n >= 0)
        return std::string(buf, static_cast<size_t>(n));
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0,
                             special);
    big.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return big;
}

}  // namespace

std::string Tokenizer::piece(int32_t token) const {
    return vocab_call("detokenize", [&] { return token_text(vocab_, token, false); });
}

std::string Tokenizer::special_piece(int32_t token) const {
    return vocab_call("detokenize", [&] { return token_text(vocab_, token, true); });
}

bool Tokenizer::is_eog(int32_t token) const {
    return llama_vocab_is_eog(vocab_, token);
}
int32_t Tokenizer::n_vocab() const {
    return llama_vocab_n_tokens(vocab_);
}
int32_t Tokenizer::bos() const {
    return llama_vocab_bos(vocab_);
}

bool Tokenizer::adds_bos() const {
    return llama_vocab_get_add_bos(vocab_);
}

bool Tokenizer::adds_eos() const {
    return llama_vocab_get_add_eos(vocab_);
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage> &messages) const {
    if (chat_template_.empty()) {
        throw Error(ErrorCode::kUnsupported, "the model has no chat template; use a plain prompt");
    }
    std::vector<llama_chat_message> msgs;
    msgs.reserve(messages.size());
    size_t total = 0;
    for (const auto &m : messages) {
        msgs.push_back({m.role.c_str(), m.content.c_str()});
        total += m.role.size() + m.content.size();
    }
    std::string buf(total * 2 + 1024, '\0');
    int32_t n = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true,
                                          buf.data(), static_cast<int32_t>(buf.size()));
    if (n > static_cast<int32_t>(buf.size())) {
        buf.resize(static_cast<size_t>(n));
        n = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true,
                                      buf.data(), static_cast<int32_t>(buf.size()));
    }
    if (n < 0)
        throw Error(ErrorCode::kUnsupported,
                    "libllama does not support this model's chat template");
    buf.resize(static_cast<size_t>(n));
    return buf;
}

size_t utf8_complete_prefix(const std::string &s) {
    // walk back over at most 3 continuation bytes to the last lead byte
    size_t n = s.size();
    size_t i = n;
    int cont = 0;
    while (i > 0 && cont < 4) {
        const unsigned char c = static_cast<unsigned char>(s[i - 1]);
        if ((c & 0xC0) == 0x80) {
            ++cont;
            --i;
            continue;
        }
        size_t need = 1;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return (n - (i - 1) >= need) ? n : i - 1;
    }
    return n;
}

std::string Detokenizer::push(int32_t token) {
    pending_ += tok_.piece(token);
    const size_t ok = utf8_complete_prefix(pending_);
    std::string out = pending_.substr(0, ok);
    pending_.erase(0, ok);
    return out;
}

std::string Detokenizer::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace colony
