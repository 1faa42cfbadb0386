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

}  // namespace colony
