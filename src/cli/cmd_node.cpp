// colony node: list, approve and revoke the worker node keys a coordinator has
// seen (net/node_store.h). Like `colony token`, it edits the coordinator's
// config dir; a running coordinator picks the change up within one heartbeat
// interval (at most a second).
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/cli_paths.h"
#include "cli/commands.h"
#include "net/node_store.h"
#include "net/tokens.h"
#include "util/error.h"

namespace colony {

namespace {

std::string utc_time(int64_t unix_s) {
    char when[32] = "?";
    const std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    if (gmtime_r(&t, &tm))
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    return when;
}

void print_list(const NodeStore &store) {
    std::printf("%-16s  %-8s  %-7s  %-16s  %-20s  %s\n", "ID", "STATE", "CODE", "TOKEN",
                "FIRST SEEN (UTC)", "NAME");
    for (const NodeRecord &r : store.list()) {
        std::printf("%-16s  %-8s  %-7s  %-16s  %-20s  %s\n", r.id.c_str(), node_state_name(r.state),
                    r.code.c_str(), r.token_id.empty() ? "-" : r.token_id.c_str(),
                    utc_time(r.first_seen_unix).c_str(), r.name.c_str());
    }
}

}  // namespace

int cmd_node(int argc, char **argv) {
    const std::string usage =
        "usage: colony node list|approve|revoke [CODE|ID] [--config-dir DIR]\n"
        "  list     the worker node keys this coordinator has seen: pending, approved\n"
        "           (pinned) or revoked, with their pairing codes\n"
        "  approve  admit the node with this pairing code (123-456) or ID prefix; compare\n"
        "           the code with the one `colony join` printed on the worker first\n"
        "  revoke   refuse the node from now on; a running coordinator closes its\n"
        "           connections and re-plans around it within one heartbeat\n";
    if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
        std::fputs(usage.c_str(), argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const std::string action = argv[1];
    int first_option = 2;
    std::string target;
    if (action == "approve" || action == "revoke") {
        if (argc < 3 || argv[2][0] == '-') {
            throw Error(ErrorCode::kInvalidArgument,
                        "colony node " + action + " needs a pairing code or node ID");
        }
        target = argv[2];
        first_option = 3;
    } else if (action != "list") {
        throw Error(ErrorCode::kInvalidArgument, "unknown action '" + action + "'\n" + usage);
    }
    const std::filesystem::path dir =
        parse_store_command("colony node " + action, "Manage the node keys of a coordinator.",
                            usage, argc, argv, first_option);
    if (dir.empty())
        return 0;  // --help
    NodeStore store(dir);
    if (action == "list") {
        print_list(store);
        return 0;
    }
    const NodeState to = action == "approve" ? NodeState::kApproved : NodeState::kRevoked;
    const NodeRecord before = store.set_state(target, to);
    if (before.state == to) {
        std::printf("node %s ('%s', code %s) was already %s\n", before.id.c_str(),
                    before.name.c_str(), before.code.c_str(), node_state_name(to));
        return 0;
    }
    std::printf("%s node %s ('%s', code %s, was %s)\n", node_state_name(to), before.id.c_str(),
                before.name.c_str(), before.code.c_str(), node_state_name(before.state));
    if (to == NodeState::kRevoked && !before.token_id.empty()) {
        // Without --confirm-pairing a new key with the same token is trusted on first use.
        const TokenStore tokens(dir);
        const std::optional<TokenRecord> t = tokens.find(before.token_id);
        if (t && !t->revoked) {
            std::fprintf(stderr,
                         "colony node: its token %s is still active; unless the coordinator runs "
                         "with --confirm-pairing, revoke it too (colony token revoke %s) so that "
                         "its holder cannot join with a new key\n",
                         t->id.c_str(), t->id.c_str());
        }
    }
    return 0;
}

}  // namespace colony
