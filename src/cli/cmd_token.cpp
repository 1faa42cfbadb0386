// colony token: list, create and revoke the join tokens of a coordinator.
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/cli_paths.h"
#include "cli/commands.h"
#include "net/keys.h"
#include "net/tokens.h"
#include "util/error.h"

namespace colony {

int cmd_token(int argc, char **argv) {
    const std::string usage =
        "usage: colony token list|create|revoke ID [--config-dir DIR]\n"
        "  list     the tokens of the coordinator whose config dir this is\n"
        "  create   a new join token (printed in full)\n"
        "  revoke   revoke the token whose id starts with ID; a running coordinator\n"
        "           drops its workers (closes their connections, re-plans around them)\n"
        "           within one heartbeat interval, and they exit with status 77\n";
    if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
        std::fputs(usage.c_str(), argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const std::string action = argv[1];
    int first_option = 2;
    std::string id;
    if (action == "revoke") {
        if (argc < 3 || argv[2][0] == '-') {
            throw Error(ErrorCode::kInvalidArgument, "colony token revoke needs a token ID");
        }
        id = argv[2];
        first_option = 3;
    } else if (action != "list" && action != "create") {
        throw Error(ErrorCode::kInvalidArgument, "unknown action '" + action + "'\n" + usage);
    }
    const std::filesystem::path dir = parse_store_command(
        "colony token " + action, "Manage join tokens.", usage, argc, argv, first_option);
    if (dir.empty())
        return 0;  // --help
    TokenStore store(dir);
    if (action == "list") {
        std::printf("%-16s  %-20s  %s\n", "ID", "CREATED (UTC)", "STATUS");
        for (const TokenRecord &r : store.list()) {
            char when[32] = "?";
            const std::time_t t = static_cast<std::time_t>(r.created_unix);
            std::tm tm{};
            if (gmtime_r(&t, &tm))
                std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            std::printf("%-16s  %-20s  %s\n", r.id.c_str(), when, r.revoked ? "revoked" : "active");
        }
    } else if (action == "create") {
        const CurveKeypair node = load_or_create_node_keys(dir);
        const TokenRecord r = store.create();
        std::printf("%s\n", join_token_format({node.public_z85, r.join_keys}).c_str());
        std::fprintf(stderr, "colony token: created token %s\n", r.id.c_str());
    } else {
        const bool changed = store.revoke(id);
        std::printf("%s\n", changed ? "revoked" : "already revoked");
    }
    return 0;
}

}  // namespace colony
