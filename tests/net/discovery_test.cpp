// Discovery: beacon encoding rules, hostile datagrams, interface filtering,
// and a real broadcast/multicast exchange between two network namespaces
// (joined by a veth pair, with their own addresses; skipped, the only skip,
// without root or network namespaces).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>

#include "common/prerequisite.h"
#include "net/discovery.h"
#include "util/error.h"

namespace colony {
namespace {

Beacon sample() {
    return Beacon{"home-lab", "0123456789abcdef", 7411, 8080, "phone-1"};
}

TEST(Discovery, BeaconRoundTrip) {
    const Beacon b = sample();
    EXPECT_EQ(beacon_decode(beacon_encode(b)), b);
}

TEST(Discovery, RejectsHostileDatagrams) {
    const char *bad[] = {
        "",
        "not json",
        "[1,2,3]",
        R"({"colony":2,"cluster":"a","fp":"0123456789abcdef","port":1,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","fp":"0123456789ABCDEF","port":1,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","fp":"0123456789abcdef","port":0,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","fp":"0123456789abcdef","port":70000,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a b","fp":"0123456789abcdef","port":1,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","fp":"0123456789abcdef","port":"1","api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","fp":"0123456789abcdef","port":-1,"api_port":0,"node":""})",
        R"({"colony":1,"cluster":"a","port":1,"api_port":0,"node":""})",
    };
    for (const char *d : bad) {
        try {
            beacon_decode(d);
            ADD_FAILURE() << "accepted: " << d;
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::kProtocol) << d;
        }
    }
    EXPECT_THROW(beacon_decode(std::string(kBeaconMaxBytes + 1, ' ')), Error);
    Beacon b = sample();
    b.fingerprint = "xyz";
    EXPECT_THROW(beacon_encode(b), Error);
}

TEST(Discovery, VirtualInterfacesAreRecognised) {
    for (const char *n : {"docker0", "br-1a2b", "veth12", "virbr0", "tailscale0"})
        EXPECT_TRUE(is_virtual_interface(n)) << n;
    for (const char *n : {"eth0", "wlan0", "enp3s0", "rmnet_data0"})
        EXPECT_FALSE(is_virtual_interface(n)) << n;
}

TEST(Discovery, ChoosesExactlyOneMatchingCoordinator) {
    std::vector<HeardCoordinator> heard = {{sample(), "10.0.0.2"}};
    Beacon other = sample();
    other.fingerprint = "fedcba9876543210";
    heard.push_back({other, "10.0.0.3"});
    EXPECT_EQ(choose_coordinator(heard, "0123456789abcdef").address, "10.0.0.2");
    EXPECT_THROW(choose_coordinator(heard, "1111111111111111"), Error);
    heard.push_back({sample(), "10.0.0.9"});  // a second coordinator with the same key
    EXPECT_THROW(choose_coordinator(heard, "0123456789abcdef"), Error);
}

/// Two namespaces cl-disc-a (10.215.0.1) and cl-disc-b (10.215.0.2) on a veth pair.
class TwoHosts : public ::testing::Test {
  protected:
    void SetUp() override {
        COLONY_REQUIRE_PREREQUISITE(test::Prerequisite::NetworkNamespaces);
        TearDownNs();
        const std::string script =
            "set -e; ip netns add cl-disc-a; ip netns add cl-disc-b; "
            "ip link add eth0 netns cl-disc-a type veth peer name eth0 netns cl-disc-b; "
            "ip -n cl-disc-a addr add 10.215.0.1/24 broadcast 10.215.0.255 dev eth0; "
            "ip -n cl-disc-b addr add 10.215.0.2/24 broadcast 10.215.0.255 dev eth0; "
            "ip -n cl-disc-a link set eth0 up; ip -n cl-disc-b link set eth0 up; "
            "ip -n cl-disc-a link set lo up; ip -n cl-disc-b link set lo up";
        std::string output;
        const int rc = run_shell(script, &output);
        ready_ = true;  // tear down whatever was made
        ASSERT_EQ(rc, 0) << "setting up the two namespaces failed:\n" << script << "\n" << output;
    }
    void TearDown() override {
        if (ready_)
            TearDownNs();
    }
    static void TearDownNs() {
        std::system("ip netns del cl-disc-a 2>/dev/null; ip netns del cl-disc-b 2>/dev/null");
    }
    /// Runs `script` with sh, its stdout and stderr into *output; returns its exit status.
    static int run_shell(const std::string &script, std::string *output) {
        std::FILE *p = ::popen(("(" + script + ") 2>&1").c_str(), "r");
        if (p == nullptr)
            return -1;
        char buf[512];
        size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
            output->append(buf, n);
        const int status = ::pclose(p);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    /// Moves the calling thread into namespace `name`.
    static void enter(const std::string &name) {
        const int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(setns(fd, CLONE_NEWNET), 0);
        ::close(fd);
    }
    bool ready_ = false;
};

TEST_F(TwoHosts, WorkerHearsCoordinatorInAnotherNamespace) {
    // The coordinator beacons every 200 ms for as long as the worker listens
    // (no guess at when the listener is ready: it hears the beacons sent
    // after it bound its socket).
    std::promise<void> listened;
    std::shared_future<void> done = listened.get_future().share();
    auto sender = std::async(std::launch::async, [done] {
        enter("cl-disc-a");
        BeaconSender s(sample(), 17410, std::chrono::milliseconds(200));
        done.wait_for(std::chrono::seconds(60));
        return s.sent();
    });
    auto listener = std::async(std::launch::async, [] {
        enter("cl-disc-b");
        return listen_for_coordinators(std::chrono::milliseconds(2500), 17410);
    });
    std::vector<HeardCoordinator> heard;
    std::string listen_error;
    try {
        heard = listener.get();
    } catch (const std::exception &e) {
        listen_error = e.what();
    }
    listened.set_value();
    EXPECT_GT(sender.get(), 0u);
    ASSERT_EQ(listen_error, "");
    ASSERT_FALSE(heard.empty());
    const HeardCoordinator c = choose_coordinator(heard, sample().fingerprint);
    EXPECT_EQ(c.address, "10.215.0.1");
    EXPECT_EQ(c.beacon.port, 7411);
}

}  // namespace
}  // namespace colony
