// Join tokens (text a person pastes) and the token store file
// (<config_dir>/tokens). The first byte chooses: even, the rest is a token's
// text; odd, it is the content of a tokens file that TokenStore reads.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "fuzz_util.h"
#include "net/tokens.h"
#include "util/log.h"

namespace {
std::filesystem::path g_dir;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    colony::set_log_level(colony::LogLevel::kQuiet);
    char tmpl[] = "/tmp/colony-fuzz-token-XXXXXX";
    if (!mkdtemp(tmpl))
        std::abort();
    g_dir = tmpl;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    if (size == 0)
        return 0;
    const std::string_view text(reinterpret_cast<const char *>(data) + 1, size - 1);
    if (data[0] % 2 == 0) {
        fuzz::expect_clean("join_token_parse", [&] {
            const JoinToken t = join_token_parse(text);
            if (join_token_parse(join_token_format(t)).id() != t.id())
                std::abort();
        });
        return 0;
    }
    const std::filesystem::path file = g_dir / "tokens";
    {
        std::ofstream f(file, std::ios::binary | std::ios::trunc);
        f.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    ::chmod(file.c_str(), 0600);
    fuzz::expect_clean("TokenStore", [&] {
        TokenStore store(g_dir);
        for (const TokenRecord &r : store.list())
            (void)store.find(r.id);
        (void)store.active_join_keys();
    });
    return 0;
}
