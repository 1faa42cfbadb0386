// HTTP request bodies of the API (src/api/openai): OpenAI chat and
// completions, Ollama chat and generate, Responses and Anthropic Messages.
// The first byte chooses the endpoint; the rest is the body. Every refusal
// must be a RequestError (a 400 naming the field), never another exception
// (which the server would answer with a 500).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "api/openai/request_fields.h"
#include "api/openai/request_translate.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    if (size == 0)
        return 0;
    const std::string body(reinterpret_cast<const char *>(data) + 1, size - 1);
    ApiLimits limits;
    limits.max_tokens_limit = 512;
    fuzz::expect_clean("api request", [&] {
        switch (data[0] % 7) {
            case 0:
                (void)parse_chat_request(body, limits);
                break;
            case 1:
                (void)parse_completion_request(body, limits);
                break;
            default: {
                const nlohmann::json j = parse_object(body);  // as their handlers do
                switch (data[0] % 7) {
                    case 2:
                        (void)ollama_request(j, true, limits, true);
                        break;
                    case 3:
                        (void)ollama_request(j, false, limits, data[0] & 0x80);
                        break;
                    case 4:
                        (void)responses_request(j, limits);
                        break;
                    default:
                        (void)anthropic_request(j, limits);
                        break;
                }
            }
        }
    });
    return 0;
}
