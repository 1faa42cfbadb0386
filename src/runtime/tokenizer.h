// Tokenizer, detokenizer and chat template of a model, from libllama.
//
// The model file is opened by libllama with vocab_only, so no weights are read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct llama_model;
struct llama_vocab;

namespace colony {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

class Tokenizer {
  public:
    /// Loads the vocabulary of the GGUF at `path`. Errors: kCorrupt when
    /// libllama cannot read the vocabulary.
    explicit Tokenizer(const std::string &path);
    ~Tokenizer();
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer &operator=(const Tokenizer &) = delete;

    /// Token ids of `text`; `add_special` adds BOS/EOS as the model asks,
    /// `parse_special` turns special-token text (e.g. "<|im_start|>") into its id.
    /// Error(kCorrupt) when libllama fails on the vocabulary (incomplete
    /// vocabularies make it throw), as piece() and special_piece().
    std::vector<int32_t> tokenize(const std::string &text, bool add_special,
                                  bool parse_special) const;
    /// Text of one token (may be an incomplete UTF-8 sequence; see Detokenizer).
    std::string piece(int32_t token) const;
    bool is_eog(int32_t token) const;
    int32_t n_vocab() const;
    int32_t bos() const;
    /// Whether tokenize(text, add_special = true) starts with BOS / ends with EOS.
    bool adds_bos() const;
    bool adds_eos() const;

    bool has_chat_template() const { return !chat_template_.empty(); }
    /// The chat template's Jinja source ("" without one).
    const std::string &chat_template() const { return chat_template_; }
    /// libllama's vocabulary-only model and its vocabulary (for grammars and
    /// the common/ chat layer); valid while the Tokenizer lives.
    const llama_model *model() const { return model_; }
    const llama_vocab *vocab() const { return vocab_; }
    /// Text of one token, control tokens ("<|im_end|>") included.
    std::string special_piece(int32_t token) const;
    /// Renders messages with the model's chat template, with the assistant
    /// prefix appended. Error(kUnsupported) when the model has no template or
    /// libllama does not know it.
    std::string apply_chat_template(const std::vector<ChatMessage> &messages) const;

  private:
    /// Error(kCorrupt) when the tokenizer adds a special token (BOS, EOS,
    /// SEP) that the vocabulary does not have: libllama would abort.
    void check_special_tokens(const std::string &path) const;
    std::vector<int32_t> tokenize_unchecked(const std::string &text, bool add_special,
                                            bool parse_special) const;

    llama_model *model_ = nullptr;
    const llama_vocab *vocab_ = nullptr;
    std::string chat_template_;
};

/// Turns a stream of tokens into valid UTF-8 text: bytes of a character split
/// over tokens are held back until the character is complete.
class Detokenizer {
  public:
    explicit Detokenizer(const Tokenizer &tok) : tok_(tok) {}
    /// Text that became complete with `token` (may be empty).
    std::string push(int32_t token);
    /// Whatever is held back (invalid trailing bytes are returned as they are).
    std::string flush();

  private:
    const Tokenizer &tok_;
    std::string pending_;
};

/// Length of the longest prefix of `s` that ends on a UTF-8 character boundary.
size_t utf8_complete_prefix(const std::string &s);

}  // namespace colony
