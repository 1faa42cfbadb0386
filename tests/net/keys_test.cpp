// Node key files, fingerprints, join tokens, the tokens file and admission.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "net/admission.h"
#include "net/hash.h"
#include "net/keys.h"
#include "net/private_file.h"
#include "net/tokens.h"
#include "net/zap.h"
#include "net_test_util.h"
#include "util/error.h"

namespace colony {
namespace {

namespace fs = std::filesystem;

ErrorCode code_of(const std::function<void()> &f, std::string *what = nullptr) {
    try {
        f();
    } catch (const Error &e) {
        if (what != nullptr) {
            *what = e.what();
        }
        return e.code();
    }
    ADD_FAILURE() << "no error thrown";
    return ErrorCode::kInternal;
}

TEST(NodeKeys, CreatedWithMode0600AndReloaded) {
    test::temp_dir tmp;
    const fs::path dir = tmp.path() / "config" / "colony";
    const CurveKeypair a = load_or_create_node_keys(dir);
    EXPECT_EQ(a.public_z85.size(), 40u);
    EXPECT_EQ(curve_public_from_secret(a.secret_z85), a.public_z85);
    EXPECT_EQ(test::file_mode(node_key_path(dir)), 0600u);
    EXPECT_EQ(test::file_mode(dir), 0700u);
    const CurveKeypair b = load_or_create_node_keys(dir);  // same key, not a new one
    EXPECT_EQ(b.public_z85, a.public_z85);
    EXPECT_EQ(b.secret_z85, a.secret_z85);
}

TEST(NodeKeys, RefusesGroupOrWorldReadableKeyFile) {
    test::temp_dir tmp;
    const CurveKeypair a = load_or_create_node_keys(tmp.path());
    const fs::path file = node_key_path(tmp.path());
    ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
    std::string why;
    EXPECT_EQ(code_of([&] { load_or_create_node_keys(tmp.path()); }, &why),
              ErrorCode::kUnauthorized);
    EXPECT_NE(why.find("mode 0644"), std::string::npos) << why;
    EXPECT_NE(why.find("chmod 600"), std::string::npos) << why;
    ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
    EXPECT_EQ(code_of([&] { load_key_file(file); }), ErrorCode::kUnauthorized);
    // The refused file was not replaced by a new key.
    ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
    EXPECT_EQ(load_key_file(file).public_z85, a.public_z85);
}

TEST(NodeKeys, RefusesSymlinkAndCorruptFiles) {
    test::temp_dir tmp;
    load_or_create_node_keys(tmp.path());
    const fs::path link = tmp.path() / "link.key";
    fs::create_symlink(node_key_path(tmp.path()), link);
    EXPECT_EQ(code_of([&] { load_key_file(link); }), ErrorCode::kUnauthorized);

    const fs::path bad = tmp.path() / "bad.key";
    create_private_file(bad, "public 0123\nsecret 4567\n");
    EXPECT_EQ(code_of([&] { load_key_file(bad); }), ErrorCode::kCorrupt);

    const CurveKeypair k1 = curve_keypair_generate();
    const CurveKeypair k2 = curve_keypair_generate();
    const fs::path mismatched = tmp.path() / "mismatched.key";
    create_private_file(mismatched, "public " + k1.public_z85 + "\nsecret " + k2.secret_z85 + "\n");
    std::string why;
    EXPECT_EQ(code_of([&] { load_key_file(mismatched); }, &why), ErrorCode::kCorrupt);
    EXPECT_NE(why.find("does not match"), std::string::npos) << why;
    EXPECT_EQ(code_of([&] { load_key_file(tmp.path() / "missing.key"); }), ErrorCode::kNotFound);
}

TEST(NodeKeys, CreateIsExclusive) {
    test::temp_dir tmp;
    const fs::path file = tmp.path() / "x.key";
    save_key_file(file, curve_keypair_generate());
    EXPECT_EQ(code_of([&] { save_key_file(file, curve_keypair_generate()); }),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(test::file_mode(file), 0600u);
}

TEST(NodeKeys, FingerprintIsSha256OfRawKey) {
    const CurveKeypair k = curve_keypair_generate();
    const CurveKey raw = curve_key_from_z85(k.public_z85);
    EXPECT_EQ(curve_key_to_z85(raw), k.public_z85);
    const std::string fp = key_fingerprint(k.public_z85);
    EXPECT_EQ(fp.size(), 16u);
    EXPECT_EQ(fp, to_hex(sha256(raw)).substr(0, 16));
    EXPECT_EQ(code_of([] { key_fingerprint(std::string("short")); }), ErrorCode::kInvalidArgument);
}

TEST(Sha256, KnownVector) {
    const std::string abc = "abc";  // FIPS 180-4 example
    EXPECT_EQ(to_hex(sha256({reinterpret_cast<const uint8_t *>(abc.data()), abc.size()})),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(JoinToken, FormatAndParseRoundTrip) {
    JoinToken t;
    t.coordinator_public_z85 = curve_keypair_generate().public_z85;
    t.join_keys = curve_keypair_generate();
    const std::string text = join_token_format(t);
    EXPECT_EQ(text.size(), 95u);
    EXPECT_EQ(text.rfind("colony1.", 0), 0u);
    EXPECT_EQ(
        text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        std::string::npos);
    const JoinToken back = join_token_parse("  " + text + "\n");
    EXPECT_EQ(back.coordinator_public_z85, t.coordinator_public_z85);
    EXPECT_EQ(back.join_keys.secret_z85, t.join_keys.secret_z85);
    EXPECT_EQ(back.join_keys.public_z85, t.join_keys.public_z85);
    EXPECT_EQ(back.id(), key_fingerprint(t.join_keys.public_z85));
}

TEST(JoinToken, RejectsMalformedTokens) {
    JoinToken t;
    t.coordinator_public_z85 = curve_keypair_generate().public_z85;
    t.join_keys = curve_keypair_generate();
    const std::string good = join_token_format(t);
    std::string bad_char = good;
    bad_char[20] = '$';
    std::string bad_padding = good;
    bad_padding[50] = 'B';  // last digit of the first key: its low 2 bits must be 0
    const std::vector<std::string> bad = {
        "",          "colony2." + good.substr(8),     good.substr(0, good.size() - 1),
        good + "A",  "colony1." + good.substr(8, 43), bad_char,
        bad_padding,
    };
    for (const std::string &b : bad) {
        EXPECT_EQ(code_of([&] { join_token_parse(b); }), ErrorCode::kInvalidArgument) << b;
    }
}

TEST(TokenStore, CreateListRevokePersist) {
    test::temp_dir tmp;
    std::string id1, id2;
    {
        TokenStore store(tmp.path());
        EXPECT_TRUE(store.list().empty());
        id1 = store.create().id;
        id2 = store.create().id;
        EXPECT_EQ(store.active_join_keys().size(), 2u);
        EXPECT_EQ(test::file_mode(store.path()), 0600u);
    }
    {
        TokenStore store(tmp.path());  // reloaded from the file
        ASSERT_EQ(store.list().size(), 2u);
        EXPECT_EQ(store.list()[0].id, id1);
        EXPECT_EQ(store.list()[1].id, id2);
        EXPECT_FALSE(store.list()[0].revoked);
        EXPECT_GT(store.list()[0].created_unix, 1600000000);
        EXPECT_TRUE(store.revoke(id1.substr(0, 6)));  // a unique prefix is enough
        EXPECT_FALSE(store.revoke(id1));              // already revoked
        EXPECT_EQ(code_of([&] { store.revoke("ffffffffffffffff0"); }), ErrorCode::kNotFound);
        EXPECT_EQ(code_of([&] { store.find("ab"); }), ErrorCode::kInvalidArgument);
    }
    TokenStore store(tmp.path());
    ASSERT_EQ(store.list().size(), 2u);
    EXPECT_TRUE(store.list()[0].revoked);
    EXPECT_FALSE(store.list()[1].revoked);
    ASSERT_EQ(store.active_join_keys().size(), 1u);
    EXPECT_EQ(store.active_join_keys()[0], store.list()[1].join_keys.public_z85);
}

TEST(TokenStore, RefusesReadableOrCorruptFile) {
    test::temp_dir tmp;
    {
        TokenStore store(tmp.path());
        store.create();
    }
    const fs::path file = tmp.path() / "tokens";
    ASSERT_EQ(::chmod(file.c_str(), 0604), 0);
    EXPECT_EQ(code_of([&] { TokenStore s(tmp.path()); }), ErrorCode::kUnauthorized);
    ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
    {
        std::ofstream out(file, std::ios::app);
        out << "0123456789abcdef 1 0 notakey notakey\n";
    }
    EXPECT_EQ(code_of([&] { TokenStore s(tmp.path()); }), ErrorCode::kCorrupt);
}

TEST(Admission, RevokeRemovesJoinKeyAndMembers) {
    test::temp_dir tmp;
    zmq::context_t ctx;
    ZapHandler zap(ctx);
    TokenStore store(tmp.path());
    const CurveKeypair coordinator = curve_keypair_generate();
    AdmissionControl adm(store, zap, coordinator.public_z85);
    const TokenRecord t1 = adm.create_token();
    const TokenRecord t2 = adm.create_token();
    const CurveKey j1 = curve_key_from_z85(t1.join_keys.public_z85);
    EXPECT_TRUE(zap.is_allowed(kZapDomainControl, j1));
    EXPECT_TRUE(zap.is_allowed(kZapDomainData, curve_key_from_z85(coordinator.public_z85)));

    const CurveKeypair node_a = curve_keypair_generate();
    const CurveKeypair node_b = curve_keypair_generate();
    adm.admit_member(t1.id, node_a.public_z85);
    adm.admit_member(t2.id, node_b.public_z85);
    EXPECT_TRUE(zap.is_allowed(kZapDomainData, curve_key_from_z85(node_a.public_z85)));
    EXPECT_EQ(adm.member_token(node_a.public_z85), t1.id);

    const std::vector<std::string> removed = adm.revoke_token(t1.id);
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0], node_a.public_z85);
    EXPECT_FALSE(zap.is_allowed(kZapDomainControl, j1));
    EXPECT_FALSE(zap.is_allowed(kZapDomainData, curve_key_from_z85(node_a.public_z85)));
    EXPECT_TRUE(zap.is_allowed(kZapDomainData, curve_key_from_z85(node_b.public_z85)));
    EXPECT_FALSE(adm.member_token(node_a.public_z85).has_value());
    EXPECT_FALSE(adm.token_active(t1.id));
    EXPECT_TRUE(adm.token_active(t2.id));
    EXPECT_EQ(code_of([&] { adm.admit_member(t1.id, node_a.public_z85); }),
              ErrorCode::kUnauthorized);

    // Another process revokes t2 in the file; reload() applies it.
    {
        TokenStore other(tmp.path());
        other.revoke(t2.id);
    }
    const std::vector<std::string> removed2 = adm.reload();
    ASSERT_EQ(removed2.size(), 1u);
    EXPECT_EQ(removed2[0], node_b.public_z85);
    EXPECT_TRUE(zap.allowed(kZapDomainControl).empty());
    EXPECT_EQ(zap.allowed(kZapDomainData).size(), 1u);  // the coordinator only
}

}  // namespace
}  // namespace colony

namespace colony {
namespace {

// zap_decide is what ZapHandler answers (RFC 27): only a CURVE request of
// exactly 7 frames whose 32-byte key the allow-list holds is admitted, with the
// key's fingerprint as User-Id; everything else is a 400 with a reason.
TEST(ZapDecide, AdmitsOnlyAnAllowedCurveKey) {
    CurveKey key{};
    key.fill(7);
    const auto allow = [&](const std::string &domain, const CurveKey &k) {
        return domain == kZapDomainControl && k == key;
    };
    const std::string raw(key.begin(), key.end());
    std::vector<std::string> req = {"1.0", "42", kZapDomainControl, "10.0.0.2", "", "CURVE", raw};
    ZapDecision d = zap_decide(req, allow);
    EXPECT_EQ(d.status, "200");
    EXPECT_EQ(d.request_id, "42");
    EXPECT_EQ(d.user_id, key_fingerprint(key));
    EXPECT_TRUE(d.reason.empty());

    auto denied = [&](std::vector<std::string> r, const char *why) {
        const ZapDecision x = zap_decide(r, allow);
        EXPECT_EQ(x.status, "400") << why;
        EXPECT_TRUE(x.user_id.empty()) << why;
        EXPECT_FALSE(x.reason.empty()) << why;
    };
    auto r = req;
    r[2] = kZapDomainData;
    denied(r, "another domain");
    r = req;
    r[6][0] ^= 1;
    denied(r, "another key");
    r = req;
    r[6].pop_back();
    denied(r, "short key");
    r = req;
    r[5] = "PLAIN";
    denied(r, "another mechanism");
    r = req;
    r.push_back("extra");
    denied(r, "an extra frame");
    r = req;
    r[0] = "2.0";
    denied(r, "another version");
    denied({}, "no frames");
    denied({"1.0"}, "one frame");
}

}  // namespace
}  // namespace colony
