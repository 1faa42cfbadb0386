// URLs of a hub and its redirects (src/hub/url.h).
#include <gtest/gtest.h>

#include "hub/url.h"
#include "util/error.h"

namespace colony::test {
namespace {

TEST(Url, ParsesSchemeHostPortAndTarget) {
    const Url u =
        parse_url("https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/a.gguf?download=true");
    EXPECT_EQ(u.scheme, "https");
    EXPECT_EQ(u.host, "huggingface.co");
    EXPECT_EQ(u.port, 443);
    EXPECT_EQ(u.target, "/Qwen/Qwen3-8B-GGUF/resolve/main/a.gguf?download=true");
    EXPECT_EQ(u.origin(), "https://huggingface.co:443");
    EXPECT_EQ(u.str(),
              "https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/a.gguf?download=true");

    const Url v = parse_url("HTTP://[::1]:8080");
    EXPECT_EQ(v.scheme, "http");
    EXPECT_EQ(v.host, "::1");
    EXPECT_EQ(v.port, 8080);
    EXPECT_EQ(v.target, "/");
    EXPECT_EQ(v.str(), "http://[::1]:8080/");
}

TEST(Url, RefusesWhatIsNotAnHttpUrl) {
    for (const char *bad :
         {"huggingface.co/x", "ftp://h/x", "http://", "http://h:0/", "http://h:70000/",
          "http://h:12ab/", "https://user:pass@h/x", "http://[::1/x"}) {
        try {
            parse_url(bad);
            ADD_FAILURE() << bad << " was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
            EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
        }
    }
}

TEST(Url, ResolvesAbsoluteAndOriginRelativeLocations) {
    const Url base = parse_url("https://huggingface.co/a/b/resolve/main/f.gguf");
    const Url cdn = resolve_location(base, "https://cas-bridge.xethub.hf.co/xet/abc?sig=1");
    EXPECT_EQ(cdn.origin(), "https://cas-bridge.xethub.hf.co:443");
    EXPECT_EQ(cdn.target, "/xet/abc?sig=1");
    const Url moved = resolve_location(base, "/a/renamed/resolve/main/f.gguf");
    EXPECT_EQ(moved.origin(), base.origin());
    EXPECT_EQ(moved.target, "/a/renamed/resolve/main/f.gguf");
    EXPECT_THROW(resolve_location(base, "//evil.example/x"), Error);
    EXPECT_THROW(resolve_location(base, "relative/x"), Error);
}

TEST(Url, EncodesPathsKeepingSlashes) {
    EXPECT_EQ(encode_path("owner/My Model+v2.gguf"), "owner/My%20Model%2Bv2.gguf");
    EXPECT_EQ(encode_path("a-b_c.d~e/f"), "a-b_c.d~e/f");
}

}  // namespace
}  // namespace colony::test
