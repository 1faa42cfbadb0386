#include "net/keys.h"

#include <zmq.h>

#include <cstdlib>
#include <sstream>

#include "net/hash.h"
#include "net/private_file.h"
#include "util/error.h"
#include "util/log.h"

namespace colony {

namespace fs = std::filesystem;

namespace {

constexpr size_t kZ85KeyChars = 40;

void check_z85_key(const std::string &z85, const char *what) {
    CurveKey raw{};
    if (z85.size() != kZ85KeyChars || zmq_z85_decode(raw.data(), z85.c_str()) == nullptr) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string(what) + " is not a 40-character Z85 CURVE key");
    }
}

}  // namespace

CurveKeypair curve_keypair_generate() {
    if (!zmq_has("curve")) {
        throw Error(ErrorCode::kUnsupported, "libzmq was built without CURVE security");
    }
    char pub[kZ85KeyChars + 1] = {};
    char sec[kZ85KeyChars + 1] = {};
    if (zmq_curve_keypair(pub, sec) != 0) {
        throw Error(ErrorCode::kInternal,
                    std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
    }
    return {pub, sec};
}

std::string curve_public_from_secret(const std::string &secret_z85) {
    check_z85_key(secret_z85, "secret key");
    char pub[kZ85KeyChars + 1] = {};
    if (zmq_curve_public(pub, secret_z85.c_str()) != 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("zmq_curve_public failed: ") + zmq_strerror(zmq_errno()));
    }
    return pub;
}

CurveKey curve_key_from_z85(const std::string &z85) {
    check_z85_key(z85, "key");
    CurveKey raw{};
    zmq_z85_decode(raw.data(), z85.c_str());
    return raw;
}

std::string curve_key_to_z85(const CurveKey &raw) {
    char out[kZ85KeyChars + 1] = {};
    zmq_z85_encode(out, raw.data(), raw.size());
    return out;
}

std::string key_fingerprint(const CurveKey &raw_public) {
    return to_hex(sha256(raw_public)).substr(0, 16);
}

std::string key_fingerprint(const std::string &public_z85) {
    return key_fingerprint(curve_key_from_z85(public_z85));
}

fs::path default_config_dir() {
    if (const char *xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
        return fs::path(xdg) / "colony";
    }
    if (const char *home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        return fs::path(home) / ".config" / "colony";
    }
    throw Error(ErrorCode::kNotFound,
                "neither XDG_CONFIG_HOME nor HOME is set; pass a config directory");
}

fs::path node_key_path(const fs::path &config_dir) {
    return config_dir / "node.key";
}

CurveKeypair load_key_file(const fs::path &file) {
    const std::string text = read_private_file(file, 4096);
    std::istringstream in(text);
    std::string line;
    CurveKeypair keys;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        if (line.rfind("public ", 0) == 0) {
            keys.public_z85 = line.substr(7);
        } else if (line.rfind("secret ", 0) == 0) {
            keys.secret_z85 = line.substr(7);
        } else {
            throw Error(ErrorCode::kCorrupt, file.string() + ": unexpected line in key file");
        }
    }
    try {
        check_z85_key(keys.public_z85, "public key");
        if (curve_public_from_secret(keys.secret_z85) != keys.public_z85) {
            throw Error(ErrorCode::kCorrupt, "public key does not match the secret key");
        }
    } catch (const Error &e) {
        throw Error(ErrorCode::kCorrupt, file.string() + ": " + e.what());
    }
    return keys;
}

void save_key_file(const fs::path &file, const CurveKeypair &keys) {
    check_z85_key(keys.public_z85, "public key");
    check_z85_key(keys.secret_z85, "secret key");
    create_private_file(file,
                        "# colony node key (CURVE). Secret: keep this file mode 0600.\n"
                        "public " +
                            keys.public_z85 + "\nsecret " + keys.secret_z85 + "\n");
}

CurveKeypair load_or_create_node_keys(const fs::path &config_dir) {
    const fs::path file = node_key_path(config_dir);
    try {
        return load_key_file(file);
    } catch (const Error &e) {
        if (e.code() != ErrorCode::kNotFound) {
            throw;
        }
    }
    ensure_private_dir(config_dir);
    const CurveKeypair keys = curve_keypair_generate();
    try {
        save_key_file(file, keys);
    } catch (const Error &e) {
        if (e.code() == ErrorCode::kInvalidArgument) {
            return load_key_file(file);  // another process created it first
        }
        throw;
    }
    COLONY_LOG_INFO("created node key %s (fingerprint %s)", file.c_str(),
                    key_fingerprint(keys.public_z85).c_str());
    return keys;
}

}  // namespace colony
