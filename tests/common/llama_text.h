// libllama's own tokenizer, detokenizer and chat templates, called directly
// (not through colony's Tokenizer), so that tests can build a reference that
// shares no code with colony's text path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct llama_model;

namespace colony::test {

/// A model's vocabulary loaded by libllama (vocab_only).
class LlamaText {
  public:
    /// Throws std::runtime_error when libllama cannot load `model`.
    explicit LlamaText(const std::string &model);
    ~LlamaText();
    LlamaText(const LlamaText &) = delete;
    LlamaText &operator=(const LlamaText &) = delete;

    /// llama_tokenize.
    std::vector<int32_t> tokenize(const std::string &text, bool add_special,
                                  bool parse_special) const;
    /// Concatenated llama_token_to_piece of each token (special tokens not
    /// rendered, no leading space stripped).
    std::string detokenize(const std::vector<int32_t> &tokens) const;
    /// llama_chat_apply_template with the model's own template and the
    /// assistant prefix; messages are (role, content).
    std::string chat_prompt(const std::vector<std::pair<std::string, std::string>> &messages) const;
    /// llama_vocab_is_eog.
    bool is_eog(int32_t token) const;
    /// The tokens up to and including the first end-of-generation token.
    std::vector<int32_t> until_eog(const std::vector<int32_t> &tokens) const;
    int32_t n_vocab() const;

  private:
    llama_model *model_ = nullptr;
};

/// `bytes` with each maximal invalid UTF-8 subpart replaced by U+FFFD (the
/// Unicode standard's practice, chapter 3.9; what nlohmann::json's dump with
/// error_handler_t::replace writes, as the API does for text that is not valid
/// UTF-8, api/openai/response_json.h).
std::string utf8_replace_invalid(const std::string &bytes);

}  // namespace colony::test
