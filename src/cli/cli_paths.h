// Default directories of the cluster subcommands.
#pragma once

#include <filesystem>
#include <string>

namespace colony {

/// The directory given on the command line, else default_config_dir() (the
/// coordinator) or default_config_dir()/worker (a worker), so that a
/// coordinator and a worker on one machine have distinct node keys.
std::filesystem::path config_dir_or_default(const std::string &given, bool worker);

/// The directory given, else $XDG_CACHE_HOME/colony/shards or
/// $HOME/.cache/colony/shards. Throws Error(kNotFound) when neither variable
/// is set.
std::filesystem::path cache_dir_or_default(const std::string &given);

/// The options of `colony token|node ACTION [ID]` (only --config-dir), parsed
/// from argv[first_option..]. Returns the coordinator's config dir, or an
/// empty path when --help printed `usage`. Throws what ArgParser throws.
std::filesystem::path parse_store_command(const std::string &command, const std::string &summary,
                                          const std::string &usage, int argc, char **argv,
                                          int first_option);

}  // namespace colony
