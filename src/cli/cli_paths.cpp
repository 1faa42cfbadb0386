#include "cli/cli_paths.h"

#include <cstdlib>

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

}  // namespace colony
