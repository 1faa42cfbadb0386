#include "net/node_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "net/keys.h"
#include "net/pairing_code.h"
#include "net/private_file.h"
#include "util/clock.h"
#include "util/error.h"

namespace colony {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxNameChars = 64;

std::optional<NodeState> parse_state(const std::string &s) {
    if (s == "pending")
        return NodeState::kPending;
    if (s == "approved")
        return NodeState::kApproved;
    if (s == "revoked")
        return NodeState::kRevoked;
    return std::nullopt;
}

bool is_hex_id(const std::string &s) {
    return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

NodeRecord parse_record(const std::string &line, const fs::path &file, size_t line_no) {
    auto bad = [&](const std::string &why) {
        return Error(ErrorCode::kCorrupt,
                     file.string() + ":" + std::to_string(line_no) + ": " + why);
    };
    std::istringstream in(line);
    NodeRecord r;
    std::string state, token, extra;
    if (!(in >> r.id >> state >> token >> r.code >> r.first_seen_unix >> r.changed_unix >>
          r.public_z85 >> r.name) ||
        (in >> extra)) {
        throw bad("malformed node line");
    }
    const std::optional<NodeState> st = parse_state(state);
    if (!st)
        throw bad("unknown node state '" + state + "'");
    r.state = *st;
    if (token != "-" && !is_hex_id(token))
        throw bad("malformed token id");
    r.token_id = token == "-" ? "" : token;
    if (normalize_pairing_code(r.code) != r.code)
        throw bad("malformed pairing code");
    if (r.name != sanitize_node_name(r.name))
        throw bad("malformed node name");
    try {
        if (key_fingerprint(r.public_z85) != r.id)
            throw bad("the id is not the fingerprint of the key");
    } catch (const Error &e) {
        if (e.code() == ErrorCode::kCorrupt)
            throw;
        throw bad(e.what());
    }
    return r;
}

/// An exclusive flock on <dir>/nodes.lock, released on scope exit.
class LockFile {
  public:
    explicit LockFile(const fs::path &dir) {
        ensure_private_dir(dir);
        const fs::path p = dir / "nodes.lock";
        fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd_ < 0) {
            throw Error(ErrorCode::kResource,
                        "cannot open " + p.string() + ": " + std::strerror(errno));
        }
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno != EINTR) {
                const std::string why = std::strerror(errno);
                ::close(fd_);
                throw Error(ErrorCode::kResource, "cannot lock " + p.string() + ": " + why);
            }
        }
    }
    ~LockFile() {
        ::flock(fd_, LOCK_UN);
        ::close(fd_);
    }
    LockFile(const LockFile &) = delete;
    LockFile &operator=(const LockFile &) = delete;

  private:
    int fd_ = -1;
};

}  // namespace

const char *node_state_name(NodeState state) {
    switch (state) {
        case NodeState::kPending:
            return "pending";
        case NodeState::kApproved:
            return "approved";
        case NodeState::kRevoked:
            return "revoked";
    }
    return "?";
}

std::string sanitize_node_name(std::string_view name) {
    std::string out;
    for (char c : name.substr(0, kMaxNameChars)) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        out.push_back(ok ? c : '_');
    }
    return out.empty() ? "-" : out;
}

NodeStore::NodeStore(fs::path config_dir) : dir_(std::move(config_dir)), file_(dir_ / "nodes") {
    reload();
}

void NodeStore::reload() {
    struct stat st {};
    const bool exists = ::lstat(file_.c_str(), &st) == 0;
    std::string text;
    try {
        text = read_private_file(file_);
    } catch (const Error &e) {
        if (e.code() != ErrorCode::kNotFound)
            throw;
    }
    std::vector<NodeRecord> records;
    std::istringstream in(text);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.empty() || line[0] == '#')
            continue;
        records.push_back(parse_record(line, file_, line_no));
    }
    records_ = std::move(records);
    mtime_ns_ = exists ? int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec : 0;
    inode_ = exists ? st.st_ino : 0;
    size_ = exists ? st.st_size : -1;
}

bool NodeStore::reload_if_changed() {
    struct stat st {};
    if (::lstat(file_.c_str(), &st) != 0) {
        if (size_ < 0)
            return false;
    } else if (st.st_ino == inode_ && st.st_size == size_ &&
               int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec == mtime_ns_) {
        return false;
    }
    reload();
    return true;
}

std::optional<NodeRecord> NodeStore::find_key(const std::string &public_z85) const {
    for (const NodeRecord &r : records_) {
        if (r.public_z85 == public_z85)
            return r;
    }
    return std::nullopt;
}

NodeRecord NodeStore::resolve(std::string_view code_or_id) const {
    const std::string text(code_or_id);
    std::vector<const NodeRecord *> found;
    const std::optional<std::string> code = normalize_pairing_code(text);
    if (code) {
        for (const NodeRecord &r : records_) {
            if (r.code == *code)
                found.push_back(&r);
        }
        // several nodes with one code: most likely a key ground to match it
        if (found.size() > 1) {
            throw Error(ErrorCode::kInvalidArgument,
                        "pairing code " + *code + " names " + std::to_string(found.size()) +
                            " nodes: name one by its ID (colony node list)");
        }
    }
    if (found.empty()) {
        const bool hex = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        });
        if (code && (!hex || text.size() > 16))
            throw Error(ErrorCode::kNotFound, "no node with pairing code " + *code);
        if (!hex || text.size() < 4 || text.size() > 16) {
            throw Error(ErrorCode::kInvalidArgument,
                        "'" + text +
                            "' is neither a pairing code (123-456) nor a node ID (at "
                            "least 4 hex digits)");
        }
        for (const NodeRecord &r : records_) {
            if (r.id.compare(0, text.size(), text) == 0)
                found.push_back(&r);
        }
        if (found.size() > 1) {
            throw Error(ErrorCode::kInvalidArgument,
                        "node ID prefix '" + text + "' matches several nodes");
        }
    }
    if (found.empty())
        throw Error(ErrorCode::kNotFound, "no node with code or ID " + text);
    return *found.front();
}

template <class Change>
auto NodeStore::locked_update(Change change) {
    LockFile lock(dir_);
    reload();
    const std::vector<NodeRecord> before = records_;
    try {
        auto result = change();
        save();
        reload();  // the file as written: its mtime, inode and size
        return result;
    } catch (...) {
        records_ = before;
        throw;
    }
}

NodeRecord NodeStore::record(const std::string &public_z85, const std::string &token_id,
                             const std::string &code, const std::string &name, NodeState initial) {
    if (std::optional<NodeRecord> r = find_key(public_z85))
        return *r;  // without the lock: a record never leaves the file by itself
    return locked_update([&] {
        if (std::optional<NodeRecord> r = find_key(public_z85))
            return *r;
        if (records_.size() >= kMaxNodes) {
            throw Error(ErrorCode::kResource, file_.string() + " holds " +
                                                  std::to_string(kMaxNodes) +
                                                  " nodes: remove some records first");
        }
        if (initial == NodeState::kPending) {
            const auto pending = [](const NodeRecord &n) { return n.state == NodeState::kPending; };
            if (static_cast<size_t>(std::count_if(records_.begin(), records_.end(), pending)) >=
                kMaxPendingNodes) {
                records_.erase(std::find_if(records_.begin(), records_.end(), pending));
            }
        }
        NodeRecord r;
        r.id = key_fingerprint(public_z85);
        r.state = initial;
        r.token_id = token_id;
        r.code = code;
        r.first_seen_unix = unix_seconds();
        r.changed_unix = r.first_seen_unix;
        r.public_z85 = public_z85;
        r.name = sanitize_node_name(name);
        records_.push_back(r);
        return r;
    });
}

NodeRecord NodeStore::set_state(std::string_view code_or_id, NodeState state) {
    return locked_update([&] {
        const NodeRecord found = resolve(code_or_id);
        for (NodeRecord &r : records_) {
            if (r.id == found.id && r.state != state) {
                r.state = state;
                r.changed_unix = unix_seconds();
            }
        }
        return found;
    });
}

void NodeStore::save() const {
    std::string text =
        "# colony nodes: id state token_id code first_seen_unix changed_unix node_public_z85 "
        "name\n";
    for (const NodeRecord &r : records_) {
        text += r.id + " " + node_state_name(r.state) + " " +
                (r.token_id.empty() ? std::string("-") : r.token_id) + " " + r.code + " " +
                std::to_string(r.first_seen_unix) + " " + std::to_string(r.changed_unix) + " " +
                r.public_z85 + " " + r.name + "\n";
    }
    ensure_private_dir(dir_);
    replace_private_file(file_, text);
}

}  // namespace colony
