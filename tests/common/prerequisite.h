// The only reason a test may skip: a named prerequisite of the machine that is
// missing (root, network namespaces). Anything else that stops a test, such as
// a cluster that did not start, a tool that failed or a file that is absent, is
// a failure, never a skip.
//
// scripts/test.sh lists every skipped test with its reason and fails the run
// when a reason does not start with "prerequisite missing: " followed by one of
// the names below (scripts/check-skips.py). With COLONY_TEST_STRICT=1 (set by
// .ci/run: CI runs as root with namespaces) a missing prerequisite fails too.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace colony::test {

/// Named prerequisites a test may skip for; the names appear in skip reasons.
enum class Prerequisite { Root, NetworkNamespaces };

inline const char *prerequisite_name(Prerequisite p) {
    return p == Prerequisite::Root ? "root" : "network namespaces";
}

/// True when COLONY_TEST_STRICT=1: a missing prerequisite fails the test.
inline bool strict_prerequisites() {
    const char *env = std::getenv("COLONY_TEST_STRICT");
    return env && std::string(env) == "1";
}

/// "" when `p` is available on this machine, else why it is not. Network
/// namespaces are probed by creating and deleting one (needs root and `ip`).
inline std::string prerequisite_missing(Prerequisite p) {
    if (::geteuid() != 0)
        return "not running as root";
    if (p == Prerequisite::Root)
        return "";
    const std::string probe = "cl-prq" + std::to_string(::getpid() % 100000);
    const std::string cmd =
        "ip netns add " + probe + " >/dev/null 2>&1 && ip netns del " + probe + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0 ? ""
                                         : "`ip netns add` failed (no iproute2 or no permission)";
}

}  // namespace colony::test

/// Skips the current test (or fails it under COLONY_TEST_STRICT=1) when the
/// prerequisite `p` (a colony::test::Prerequisite) is missing. Use it in a test
/// body or SetUp(); like GTEST_SKIP it returns from the enclosing function.
#define COLONY_REQUIRE_PREREQUISITE(p)                                                             \
    do {                                                                                           \
        const std::string colony_why_ = ::colony::test::prerequisite_missing(p);                   \
        if (!colony_why_.empty()) {                                                                \
            if (::colony::test::strict_prerequisites())                                            \
                FAIL() << "prerequisite missing: " << ::colony::test::prerequisite_name(p) << " (" \
                       << colony_why_ << "), and COLONY_TEST_STRICT=1 forbids skipping";           \
            GTEST_SKIP() << "prerequisite missing: " << ::colony::test::prerequisite_name(p)       \
                         << " (" << colony_why_ << ")";                                            \
        }                                                                                          \
    } while (0)
