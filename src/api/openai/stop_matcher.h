// Text stop sequences for streamed output: generated text is released only
// when it can no longer be the start of a stop sequence, and generation ends
// at the first stop sequence, which is not part of the output (OpenAI's
// "stop": "Up to 4 sequences where the API will stop generating further
// tokens. The returned text will not contain the stop sequence.").
#pragma once

#include <string>
#include <vector>

namespace colony {

class StopMatcher {
  public:
    /// `stops`: non-empty stop sequences (empty ones are ignored).
    explicit StopMatcher(std::vector<std::string> stops);

    /// Appends generated text; returns the text that is now safe to send
    /// (possibly empty). After a match, returns the text before the stop
    /// sequence and stopped() is true; later pushes return "".
    std::string push(const std::string &text);
    /// Text held back as a possible stop-sequence prefix (at the end of generation).
    std::string flush();
    bool stopped() const { return stopped_; }

  private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

}  // namespace colony
