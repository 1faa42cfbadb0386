#include "net/tokens.h"

#include <cctype>
#include <chrono>
#include <sstream>

#include "net/private_file.h"
#include "util/clock.h"
#include "util/error.h"

namespace colony {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTokenPrefix = "colony1.";
constexpr size_t kB64KeyChars = 43;  // ceil(32 * 8 / 6), unpadded
constexpr const char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(const CurveKey &raw) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (uint8_t b : raw) {
        acc = (acc << 8) | b;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kB64Url[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) {
        out.push_back(kB64Url[(acc << (6 - bits)) & 63]);
    }
    return out;
}

int base64url_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

// Strict: exactly 43 digits, and the 2 unused low bits of the last digit are 0.
CurveKey base64url_decode_key(std::string_view text, const char *what) {
    auto bad = [&](const std::string &why) -> Error {
        return Error(ErrorCode::kInvalidArgument,
                     std::string("malformed join token: ") + what + " " + why);
    };
    if (text.size() != kB64KeyChars) {
        throw bad("has " + std::to_string(text.size()) + " characters, expected 43");
    }
    CurveKey raw{};
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (char c : text) {
        const int v = base64url_value(c);
        if (v < 0) {
            throw bad("contains a character outside base64url");
        }
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[n++] = static_cast<uint8_t>(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        throw bad("has non-zero padding bits");
    }
    return raw;
}

TokenRecord parse_record(const std::string &line, const fs::path &file, size_t line_no) {
    std::istringstream in(line);
    TokenRecord r;
    int revoked = -1;
    std::string extra;
    if (!(in >> r.id >> r.created_unix >> revoked >> r.join_keys.public_z85 >>
          r.join_keys.secret_z85) ||
        (in >> extra) || (revoked != 0 && revoked != 1)) {
        throw Error(ErrorCode::kCorrupt,
                    file.string() + ":" + std::to_string(line_no) + ": malformed token line");
    }
    r.revoked = revoked == 1;
    try {
        if (curve_public_from_secret(r.join_keys.secret_z85) != r.join_keys.public_z85 ||
            key_fingerprint(r.join_keys.public_z85) != r.id) {
            throw Error(ErrorCode::kCorrupt, "id, public and secret key do not belong together");
        }
    } catch (const Error &e) {
        throw Error(ErrorCode::kCorrupt,
                    file.string() + ":" + std::to_string(line_no) + ": " + e.what());
    }
    return r;
}

}  // namespace

std::string JoinToken::id() const {
    return key_fingerprint(join_keys.public_z85);
}

std::string join_token_format(const JoinToken &token) {
    return std::string(kTokenPrefix) +
           base64url_encode(curve_key_from_z85(token.coordinator_public_z85)) + "." +
           base64url_encode(curve_key_from_z85(token.join_keys.secret_z85));
}

JoinToken join_token_parse(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    if (text.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
        throw Error(ErrorCode::kInvalidArgument,
                    "malformed join token: it must start with 'colony1.'");
    }
    text.remove_prefix(kTokenPrefix.size());
    const size_t dot = text.find('.');
    if (dot == std::string_view::npos) {
        throw Error(ErrorCode::kInvalidArgument,
                    "malformed join token: expected colony1.<coordinator key>.<join key>");
    }
    JoinToken token;
    token.coordinator_public_z85 =
        curve_key_to_z85(base64url_decode_key(text.substr(0, dot), "coordinator key"));
    token.join_keys.secret_z85 =
        curve_key_to_z85(base64url_decode_key(text.substr(dot + 1), "join key"));
    token.join_keys.public_z85 = curve_public_from_secret(token.join_keys.secret_z85);
    return token;
}

TokenStore::TokenStore(fs::path config_dir) : dir_(std::move(config_dir)), file_(dir_ / "tokens") {
    reload();
}

void TokenStore::reload() {
    std::string text;
    try {
        text = read_private_file(file_);
    } catch (const Error &e) {
        if (e.code() != ErrorCode::kNotFound) {
            throw;
        }
    }
    std::vector<TokenRecord> records;
    std::istringstream in(text);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        records.push_back(parse_record(line, file_, line_no));
    }
    records_ = std::move(records);
}

void TokenStore::save() const {
    std::string text =
        "# colony join tokens: id created_unix revoked(0|1) join_public_z85 join_secret_z85\n";
    for (const TokenRecord &r : records_) {
        text += r.id + " " + std::to_string(r.created_unix) + " " + (r.revoked ? "1" : "0") + " " +
                r.join_keys.public_z85 + " " + r.join_keys.secret_z85 + "\n";
    }
    ensure_private_dir(dir_);
    replace_private_file(file_, text);
}

TokenRecord TokenStore::create() {
    TokenRecord r;
    r.join_keys = curve_keypair_generate();
    r.id = key_fingerprint(r.join_keys.public_z85);
    r.created_unix = unix_seconds();
    records_.push_back(r);
    try {
        save();
    } catch (...) {
        records_.pop_back();
        throw;
    }
    return r;
}

std::optional<TokenRecord> TokenStore::find(std::string_view id_prefix) const {
    if (id_prefix.size() < 4) {
        throw Error(ErrorCode::kInvalidArgument, "token id prefix '" + std::string(id_prefix) +
                                                     "' is shorter than 4 characters");
    }
    std::optional<TokenRecord> found;
    for (const TokenRecord &r : records_) {
        if (r.id.compare(0, id_prefix.size(), id_prefix) == 0) {
            if (found) {
                throw Error(
                    ErrorCode::kInvalidArgument,
                    "token id prefix '" + std::string(id_prefix) + "' matches several tokens");
            }
            found = r;
        }
    }
    return found;
}

bool TokenStore::revoke(std::string_view id_prefix) {
    const std::optional<TokenRecord> r = find(id_prefix);
    if (!r) {
        throw Error(ErrorCode::kNotFound, "no token with id " + std::string(id_prefix));
    }
    for (TokenRecord &rec : records_) {
        if (rec.id == r->id) {
            if (rec.revoked) {
                return false;
            }
            rec.revoked = true;
            try {
                save();
            } catch (...) {
                rec.revoked = false;
                throw;
            }
            return true;
        }
    }
    return false;
}

std::vector<std::string> TokenStore::active_join_keys() const {
    std::vector<std::string> keys;
    for (const TokenRecord &r : records_) {
        if (!r.revoked) {
            keys.push_back(r.join_keys.public_z85);
        }
    }
    return keys;
}

}  // namespace colony
