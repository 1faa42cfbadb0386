#include "common/llama_text.h"

#include <stdexcept>

#include "llama.h"

namespace colony::test {

LlamaText::LlamaText(const std::string &model) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    model_ = llama_model_load_from_file(model.c_str(), mp);
    if (!model_)
        throw std::runtime_error("libllama cannot load the vocabulary of " + model);
}

LlamaText::~LlamaText() {
    llama_model_free(model_);
}

std::vector<int32_t> LlamaText::tokenize(const std::string &text, bool add_special,
                                         bool parse_special) const {
    const llama_vocab *vocab = llama_model_get_vocab(model_);
    std::vector<llama_token> out(text.size() + 16);
    int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                               static_cast<int32_t>(out.size()), add_special, parse_special);
    if (n < 0) {
        out.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                           static_cast<int32_t>(out.size()), add_special, parse_special);
    }
    if (n < 0)
        throw std::runtime_error("llama_tokenize failed");
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string LlamaText::detokenize(const std::vector<int32_t> &tokens) const {
    const llama_vocab *vocab = llama_model_get_vocab(model_);
    std::string out;
    for (int32_t t : tokens) {
        char buf[256];
        const int32_t n = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, false);
        if (n < 0)
            throw std::runtime_error("llama_token_to_piece: token " + std::to_string(t));
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string LlamaText::chat_prompt(
    const std::vector<std::pair<std::string, std::string>> &messages) const {
    const char *tmpl = llama_model_chat_template(model_, nullptr);
    if (!tmpl)
        throw std::runtime_error("the model has no chat template");
    std::vector<llama_chat_message> chat;
    size_t total = 0;
    for (const auto &[role, content] : messages) {
        chat.push_back({role.c_str(), content.c_str()});
        total += role.size() + content.size();
    }
    std::string buf(2 * total + 1024, '\0');
    int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), true, buf.data(),
                                          static_cast<int32_t>(buf.size()));
    if (n > static_cast<int32_t>(buf.size())) {
        buf.resize(static_cast<size_t>(n));
        n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), true, buf.data(),
                                      static_cast<int32_t>(buf.size()));
    }
    if (n < 0)
        throw std::runtime_error("llama_chat_apply_template does not know the model's template");
    buf.resize(static_cast<size_t>(n));
    return buf;
}

bool LlamaText::is_eog(int32_t token) const {
    return llama_vocab_is_eog(llama_model_get_vocab(model_), token);
}

std::vector<int32_t> LlamaText::until_eog(const std::vector<int32_t> &tokens) const {
    std::vector<int32_t> out;
    for (int32_t t : tokens) {
        out.push_back(t);
        if (is_eog(t))
            break;
    }
    return out;
}

int32_t LlamaText::n_vocab() const {
    return llama_vocab_n_tokens(llama_model_get_vocab(model_));
}

std::string utf8_replace_invalid(const std::string &bytes) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
    std::string out;
    size_t i = 0;
    while (i < bytes.size()) {
        const unsigned char c = byte(i);
        size_t need = 0;                     // continuation bytes after the lead
        unsigned char lo = 0x80, hi = 0xBF;  // range of the first continuation byte
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
            hi = c == 0xED ? 0x9F : 0xBF;  // no surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        }
        size_t n = 1;  // bytes of a valid prefix
        while (n <= need && i + n < bytes.size()) {
            const unsigned char b = byte(i + n);
            if (n == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
                break;
            ++n;
        }
        if (need > 0 && n == need + 1) {
            out.append(bytes, i, n);
        } else {
            out += "\xEF\xBF\xBD";
        }
        i += n;
    }
    return out;
}

}  // namespace colony::test
