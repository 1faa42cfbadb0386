// Discovery across hosts (docs/cluster.md, "Discovery"): the coordinator and
// the workers in separate network namespaces of the network lab (scripts/
// netlab: hosts on an emulated ethernet switch, 10.213.0.x), no address given
// to anyone. `colony discover` lists the coordinator, `colony join` with the
// token alone finds it and serves; a token naming another coordinator finds
// nothing, and a token with the right coordinator key but a secret it never
// issued is refused. Skipped (the only skip) without root or network
// namespaces; a lab that does not come up fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "common/prerequisite.h"
#include "common/test_env.h"
#include "net/keys.h"
#include "net/tokens.h"
#include "netlab_fixture.h"

namespace colony::test {
namespace {

constexpr const char *kPrompt = "Once upon a time";

struct Outcome {
    int rc = -1;
    std::string out, err;
};

/// colony with args in namespace ns, to completion (at most timeout_ms).
Outcome run_in(const std::string &ip, const std::string &ns, const std::filesystem::path &dir,
               std::vector<std::string> args, int timeout_ms) {
    std::filesystem::create_directories(dir);
    std::vector<std::string> argv = {ip, "netns", "exec", ns, colony_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    Outcome o;
    {
        ChildProcess p(argv, (dir / "out").string(), (dir / "err").string());
        if (!p.wait(timeout_ms))
            p.stop(1000);
        o.rc = p.exit_code();
    }
    o.out = read_text(dir / "out");
    o.err = read_text(dir / "err");
    return o;
}

TEST(Discovery, JoinFindsTheCoordinatorWithNoAddressAndWrongTokensStayOut) {
    COLONY_REQUIRE_PREREQUISITE(Prerequisite::NetworkNamespaces);
    const std::string ip = find_ip();
    ASSERT_FALSE(ip.empty())
        << "`ip netns add` works, but no ip binary in /usr/sbin, /sbin, /usr/bin, /bin";
    const std::string model = model_path("stories260K-f32.gguf");
    const std::string ref = reference_greedy(model, kPrompt, 24);
    Lab lab("dt");
    ASSERT_TRUE(lab.up()) << lab.up_output();
    TempDir dir;
    auto in = [&](int host) { return std::vector<std::string>{ip, "netns", "exec", lab.ns(host)}; };
    ServeProcess serve(
        dir.file("coordinator"), model, 1,
        {"--host", "0.0.0.0", "--cluster", "lab", "--beacon-interval-ms", "300", "--name", "h1"},
        in(1));
    const JoinToken token = join_token_parse(serve.token());
    const std::string fingerprint = key_fingerprint(token.coordinator_public_z85);

    // What a third host hears.
    const Outcome heard =
        run_in(ip, lab.ns(3), dir.file("discover"), {"discover", "--seconds", "1.5"}, 20000);
    EXPECT_EQ(heard.rc, 0) << heard.err;
    EXPECT_NE(heard.out.find(fingerprint), std::string::npos) << heard.out;
    EXPECT_NE(heard.out.find("10.213.0.1"), std::string::npos) << heard.out;
    EXPECT_NE(heard.out.find("lab"), std::string::npos) << heard.out;

    // A worker with the token only: no --coordinator.
    JoinProcess w2(dir.file("h2"), "", serve.token(),
                   {"--data-host", "*", "--discover-seconds", "1.5"}, in(2));
    const uint16_t api = serve.api_port();
    ASSERT_TRUE(in_netns(lab.ns(1), [api] { return wait_health(api, "ok", 30000); }))
        << serve.log() << w2.log();
    EXPECT_NE(w2.log().find("found coordinator"), std::string::npos) << w2.log();
    EXPECT_EQ(
        kPrompt + in_netns(lab.ns(1), [api] { return complete_greedy(api, kPrompt, 24); }) + "\n",
        ref);

    // A token of another coordinator: its beacon is not heard, nothing joins.
    const CurveKeypair other_coordinator = curve_keypair_generate();
    const CurveKeypair other_join = curve_keypair_generate();
    const Outcome foreign = run_in(
        ip, lab.ns(3), dir.file("foreign"),
        {"join", "--token", join_token_format({other_coordinator.public_z85, token.join_keys}),
         "--config-dir", dir.file("foreign/config"), "--cache-dir", dir.file("foreign/cache"),
         "--discover-seconds", "1.5", "-t", "1"},
        30000);
    EXPECT_NE(foreign.rc, 0);
    EXPECT_NE(foreign.err.find("no coordinator with key fingerprint"), std::string::npos)
        << foreign.err;
    EXPECT_NE(foreign.err.find(fingerprint), std::string::npos)  // it lists what it heard
        << foreign.err;

    // The right coordinator key with a join secret it never issued: found,
    // then refused by its ZAP handler.
    const Outcome forged =
        run_in(ip, lab.ns(3), dir.file("forged"),
               {"join", "--token", join_token_format({token.coordinator_public_z85, other_join}),
                "--config-dir", dir.file("forged/config"), "--cache-dir", dir.file("forged/cache"),
                "--discover-seconds", "1.5", "-t", "1"},
               30000);
    EXPECT_NE(forged.rc, 0);
    EXPECT_NE(forged.err.find("refused the join token"), std::string::npos) << forged.err;

    // Only the worker with the real token is a member.
    const HttpReply health = in_netns(lab.ns(1), [api] { return http_get(api, "/health"); });
    ASSERT_TRUE(health.body.is_object());
    EXPECT_EQ(health.body["workers"].size(), 1u) << health.body.dump();
}

}  // namespace
}  // namespace colony::test
