#include "net/hash.h"

#include <openssl/evp.h>

#include "util/error.h"

namespace colony {

struct Sha256Hasher::state {
    struct ctx_deleter {
        void operator()(EVP_MD_CTX *ctx) const { EVP_MD_CTX_free(ctx); }
    };
    std::unique_ptr<EVP_MD_CTX, ctx_deleter> ctx{EVP_MD_CTX_new()};
    bool finished = false;
};

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<state>()) {
    if (!state_->ctx || EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr) != 1) {
        throw Error(ErrorCode::kInternal, "OpenSSL: cannot initialise SHA-256");
    }
}

Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::update(std::span<const uint8_t> bytes) {
    if (state_->finished) {
        throw Error(ErrorCode::kInternal, "Sha256Hasher::update after finish");
    }
    if (!bytes.empty() && EVP_DigestUpdate(state_->ctx.get(), bytes.data(), bytes.size()) != 1) {
        throw Error(ErrorCode::kInternal, "OpenSSL: SHA-256 update failed");
    }
}

Sha256Digest Sha256Hasher::finish() {
    if (state_->finished) {
        throw Error(ErrorCode::kInternal, "Sha256Hasher::finish called twice");
    }
    state_->finished = true;
    Sha256Digest out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(state_->ctx.get(), out.data(), &n) != 1 || n != out.size()) {
        throw Error(ErrorCode::kInternal, "OpenSSL: SHA-256 final failed");
    }
    return out;
}

Sha256Digest sha256(std::span<const uint8_t> bytes) {
    Sha256Hasher h;
    h.update(bytes);
    return h.finish();
}

std::string to_hex(std::span<const uint8_t> bytes) {
    static const char kDigits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        s.push_back(kDigits[b >> 4]);
        s.push_back(kDigits[b & 15]);
    }
    return s;
}

}  // namespace colony
