#include "cli/cli_paths.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cli/args.h"

#include "net/keys.h"
#include "util/error.h"

namespace colony {

std::filesystem::path config_dir_or_default(const std::string &given, bool worker) {
    if (!given.empty())
        return given;
    const std::filesystem::path base = default_config_dir();
    return worker ? base / "worker" : base;
}

std::filesystem::path cache_dir_or_default(const std::string &given) {
    if (!given.empty())
        return given;
    if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
        return std::filesystem::path(xdg) / "colony" / "shards";
    }
    if (const char *home = std::getenv("HOME"); home && *home) {
        return std::filesystem::path(home) / ".cache" / "colony" / "shards";
    }
    throw Error(ErrorCode::kNotFound, "set --cache-dir (neither XDG_CACHE_HOME nor HOME is set)");
}

std::filesystem::path parse_store_command(const std::string &command, const std::string &summary,
                                          const std::string &usage, int argc, char **argv,
                                          int first_option) {
    std::string config_dir;
    ArgParser p(command, summary);
    p.add("", "--config-dir", "DIR", "the coordinator's config dir (default ~/.config/colony)",
          &config_dir);
    std::vector<char *> rest = {argv[0]};
    for (int i = first_option; i < argc; ++i)
        rest.push_back(argv[i]);
    p.parse(static_cast<int>(rest.size()), rest.data());
    if (p.help_requested()) {
        std::fputs(usage.c_str(), stdout);
        return {};
    }
    return config_dir_or_default(config_dir, false);
}

}  // namespace colony
