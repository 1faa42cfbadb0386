// Pairing codes (pairing_code.h), the nodes file (node_store.h) and the
// admission decisions built on them (admission.h): pending joins, pinned
// keys across a restart, revoked node keys.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <set>

#include "net/admission.h"
#include "net/keys.h"
#include "net/node_store.h"
#include "net/pairing_code.h"
#include "net/tokens.h"
#include "net/zap.h"
#include "net_test_util.h"
#include "util/error.h"

namespace colony {
namespace {

ErrorCode code_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        return e.code();
    }
    ADD_FAILURE() << "no error thrown";
    return ErrorCode::kInternal;
}

bool data_allowed(const ZapHandler &zap, const CurveKeypair &k) {
    return zap.is_allowed(kZapDomainData, curve_key_from_z85(k.public_z85));
}

TEST(PairingCode, BothSidesComputeTheSameCodeAndAnotherKeyDiffers) {
    const CurveKeypair coordinator = curve_keypair_generate();
    const CurveKeypair node = curve_keypair_generate();
    // The coordinator has the node's key from JOIN; the worker the
    // coordinator's from its token: the same inputs, the same code.
    const JoinToken token{coordinator.public_z85, curve_keypair_generate()};
    const JoinToken parsed = join_token_parse(join_token_format(token));
    const std::string on_coordinator = pairing_code(coordinator.public_z85, node.public_z85);
    const std::string on_worker = pairing_code(parsed.coordinator_public_z85, node.public_z85);
    EXPECT_EQ(on_coordinator, on_worker);
    ASSERT_EQ(on_coordinator.size(), 7u);
    EXPECT_EQ(on_coordinator[3], '-');
    EXPECT_EQ(normalize_pairing_code(on_coordinator), on_coordinator);

    // Another node key, or another coordinator, gives another code (a
    // collision has probability 1e-6 per key: 50 keys collide with ~1e-3).
    std::set<std::string> codes = {on_coordinator};
    for (int i = 0; i < 50; ++i)
        codes.insert(pairing_code(coordinator.public_z85, curve_keypair_generate().public_z85));
    EXPECT_GE(codes.size(), 50u);
    EXPECT_NE(pairing_code(curve_keypair_generate().public_z85, node.public_z85), on_coordinator);
    // The order of the keys matters (no swapping roles).
    EXPECT_NE(pairing_code(node.public_z85, coordinator.public_z85), on_coordinator);
    EXPECT_EQ(code_of([&] { pairing_code("short", node.public_z85); }),
              ErrorCode::kInvalidArgument);
}

TEST(PairingCode, NormalizesWhatAPersonTypes) {
    EXPECT_EQ(normalize_pairing_code("123456"), "123-456");
    EXPECT_EQ(normalize_pairing_code("123-456"), "123-456");
    EXPECT_EQ(normalize_pairing_code("123 456"), "123-456");
    EXPECT_FALSE(normalize_pairing_code("12345"));
    EXPECT_FALSE(normalize_pairing_code("1234567"));
    EXPECT_FALSE(normalize_pairing_code("12a456"));
    EXPECT_FALSE(normalize_pairing_code("0123456789abcdef"));
    EXPECT_FALSE(normalize_pairing_code(""));
}

TEST(NodeStore, RecordsResolvesAndChangesStateAcrossProcesses) {
    test::temp_dir tmp;
    const CurveKeypair coordinator = curve_keypair_generate();
    const CurveKeypair a = curve_keypair_generate();
    const std::string code_a = pairing_code(coordinator.public_z85, a.public_z85);
    NodeStore store(tmp.path());
    const NodeRecord r = store.record(a.public_z85, "0123456789abcdef", code_a, "phone 1;rm -rf",
                                      NodeState::kPending);
    EXPECT_EQ(r.state, NodeState::kPending);
    EXPECT_EQ(r.id, key_fingerprint(a.public_z85));
    EXPECT_EQ(r.name, "phone_1_rm_-rf");
    EXPECT_EQ(test::file_mode(tmp.path() / "nodes"), 0600u);
    // A second record of the same key keeps the first.
    EXPECT_EQ(store.record(a.public_z85, "", code_a, "x", NodeState::kApproved).state,
              NodeState::kPending);

    // Another process (the CLI) approves it by code, without the dash.
    {
        NodeStore cli(tmp.path());
        std::string digits = code_a;
        digits.erase(3, 1);
        EXPECT_EQ(cli.set_state(digits, NodeState::kApproved).state, NodeState::kPending);
    }
    EXPECT_TRUE(store.reload_if_changed());
    EXPECT_FALSE(store.reload_if_changed());
    EXPECT_EQ(store.find_key(a.public_z85)->state, NodeState::kApproved);
    // ... and revokes it by an id prefix.
    {
        NodeStore cli(tmp.path());
        cli.set_state(r.id.substr(0, 6), NodeState::kRevoked);
    }
    EXPECT_TRUE(store.reload_if_changed());
    EXPECT_EQ(store.find_key(a.public_z85)->state, NodeState::kRevoked);

    EXPECT_EQ(code_of([&] { store.resolve("999-999" == code_a ? "999-998" : "999-999"); }),
              ErrorCode::kNotFound);
    EXPECT_EQ(code_of([&] { store.resolve("ab"); }), ErrorCode::kInvalidArgument);
    EXPECT_EQ(code_of([&] { store.resolve("not a code"); }), ErrorCode::kInvalidArgument);
}

TEST(NodeStore, TwoNodesWithOneCodeMustBeNamedById) {
    test::temp_dir tmp;
    NodeStore store(tmp.path());
    const CurveKeypair a = curve_keypair_generate(), b = curve_keypair_generate();
    // A key ground to show the same code as the real device.
    store.record(a.public_z85, "", "111-111", "real", NodeState::kPending);
    store.record(b.public_z85, "", "111-111", "impostor", NodeState::kPending);
    EXPECT_EQ(code_of([&] { store.set_state("111-111", NodeState::kApproved); }),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(store.set_state(key_fingerprint(a.public_z85), NodeState::kApproved).name, "real");
    EXPECT_EQ(store.find_key(b.public_z85)->state, NodeState::kPending);
}

TEST(NodeStore, PendingRecordsAreCappedAndBadFilesRefused) {
    test::temp_dir tmp;
    NodeStore store(tmp.path());
    const CurveKeypair first = curve_keypair_generate();
    store.record(first.public_z85, "", "000-000", "first", NodeState::kPending);
    for (size_t i = 0; i < kMaxPendingNodes; ++i)
        store.record(curve_keypair_generate().public_z85, "", "000-001", "n", NodeState::kPending);
    EXPECT_EQ(store.list().size(), kMaxPendingNodes);
    EXPECT_FALSE(store.find_key(first.public_z85));  // the oldest pending one went

    {
        std::ofstream out(tmp.path() / "nodes", std::ios::app);
        out << "0123456789abcdef approved - 000-000 1 1 notakey name\n";
    }
    EXPECT_EQ(code_of([&] { NodeStore s(tmp.path()); }), ErrorCode::kCorrupt);
}

/// A coordinator's admission state over one config dir, as after a (re)start.
struct AdmissionFixture {
    explicit AdmissionFixture(const std::filesystem::path &dir, const CurveKeypair &keys,
                              bool confirm)
        : tokens(dir),
          nodes(dir),
          zap(ctx),
          admission(tokens, zap, keys.public_z85, &nodes, confirm) {}
    zmq::context_t ctx;
    TokenStore tokens;
    NodeStore nodes;
    ZapHandler zap;
    AdmissionControl admission;
};

TEST(Admission, PendingJoinIsAdmittedOnlyOnceApprovedAndStaysPinnedAfterARestart) {
    test::temp_dir tmp;
    const CurveKeypair keys = curve_keypair_generate();
    const CurveKeypair node = curve_keypair_generate();
    std::string token_id;
    {
        AdmissionFixture c(tmp.path(), keys, true);
        token_id = c.admission.create_token().id;
        const JoinVerdict v = c.admission.admit_join(token_id, node.public_z85, "w1");
        EXPECT_FALSE(v.admitted);
        EXPECT_TRUE(v.first_join);
        EXPECT_EQ(v.code, pairing_code(keys.public_z85, node.public_z85));
        EXPECT_FALSE(c.admission.member_token(node.public_z85));
        EXPECT_FALSE(data_allowed(c.zap, node));
        // asking again changes nothing
        EXPECT_FALSE(c.admission.admit_join(token_id, node.public_z85, "w1").admitted);
        EXPECT_EQ(c.admission.node(node.public_z85)->state, NodeState::kPending);

        NodeStore(tmp.path()).set_state(v.code, NodeState::kApproved);  // colony node approve
        const JoinVerdict again = c.admission.admit_join(token_id, node.public_z85, "w1");
        EXPECT_TRUE(again.admitted);
        EXPECT_FALSE(again.first_join);
        EXPECT_EQ(c.admission.member_token(node.public_z85), token_id);
        EXPECT_TRUE(data_allowed(c.zap, node));
    }
    {
        // Restarted: the pinned key joins without asking; a new key waits.
        AdmissionFixture c(tmp.path(), keys, true);
        EXPECT_TRUE(c.admission.admit_join(token_id, node.public_z85, "w1").admitted);
        EXPECT_FALSE(
            c.admission.admit_join(token_id, curve_keypair_generate().public_z85, "w2").admitted);
    }
    {
        // Without --confirm-pairing a new key is trusted on first use and pinned.
        AdmissionFixture c(tmp.path(), keys, false);
        const CurveKeypair tofu = curve_keypair_generate();
        const JoinVerdict v = c.admission.admit_join(token_id, tofu.public_z85, "w3");
        EXPECT_TRUE(v.admitted);
        EXPECT_TRUE(v.first_join);
        EXPECT_EQ(c.admission.node(tofu.public_z85)->state, NodeState::kApproved);
        EXPECT_EQ(c.admission.node(tofu.public_z85)->token_id, token_id);
    }
}

TEST(Admission, RevokedNodeKeyIsRemovedAndRefusedEvenWithAnActiveToken) {
    test::temp_dir tmp;
    const CurveKeypair keys = curve_keypair_generate();
    AdmissionFixture c(tmp.path(), keys, false);
    const std::string token_id = c.admission.create_token().id;
    const CurveKeypair a = curve_keypair_generate(), b = curve_keypair_generate();
    ASSERT_TRUE(c.admission.admit_join(token_id, a.public_z85, "a").admitted);
    ASSERT_TRUE(c.admission.admit_join(token_id, b.public_z85, "b").admitted);

    NodeStore(tmp.path()).set_state(key_fingerprint(a.public_z85), NodeState::kRevoked);
    const std::vector<AdmissionRemoval> removed = c.admission.reload_changes();
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0].node_public_z85, a.public_z85);
    EXPECT_EQ(removed[0].reason, "node key revoked");
    EXPECT_FALSE(data_allowed(c.zap, a));
    EXPECT_TRUE(data_allowed(c.zap, b));
    EXPECT_FALSE(c.admission.member_token(a.public_z85));
    EXPECT_EQ(code_of([&] { c.admission.admit_join(token_id, a.public_z85, "a"); }),
              ErrorCode::kUnauthorized);
    EXPECT_TRUE(c.admission.reload_changes().empty());

    // Revoking the token removes the other member, with that reason.
    TokenStore(tmp.path()).revoke(token_id);
    const std::vector<AdmissionRemoval> by_token = c.admission.reload_changes();
    ASSERT_EQ(by_token.size(), 1u);
    EXPECT_EQ(by_token[0].node_public_z85, b.public_z85);
    EXPECT_EQ(by_token[0].reason, "token revoked");
}

}  // namespace
}  // namespace colony
