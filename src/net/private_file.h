// Files that hold secrets (node keys, join tokens), the way ssh treats
// ~/.ssh: created with mode 0600 through open(O_CREAT|O_EXCL, 0600), and
// refused when group or others have any access bit, when they are not
// regular files, or when another user owns them. Symlinks are not followed.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace colony {

/// Creates dir and its missing parents; the directories it creates get mode
/// 0700. Throws Error(kInvalidArgument) when dir exists and is no directory,
/// Error(kResource) when mkdir fails.
void ensure_private_dir(const std::filesystem::path &dir);

/// Reads a secret file (at most max_bytes). Throws Error(kNotFound) when it
/// does not exist; Error(kUnauthorized, why) when its mode has any group or
/// other bit (st_mode & 077), another user owns it, or it is a symlink or not
/// a regular file; Error(kCorrupt) when it is larger than max_bytes.
std::string read_private_file(const std::filesystem::path &file, size_t max_bytes = 1 << 20);

/// Creates file with mode 0600 holding content, atomically: the content is
/// written to a temporary file created with open(O_CREAT|O_EXCL, 0600), synced,
/// then hard-linked to `file`, so readers never see half a file. Throws
/// Error(kInvalidArgument) when `file` already exists, Error(kResource) on I/O
/// errors.
void create_private_file(const std::filesystem::path &file, std::string_view content);

/// Replaces (or creates) file with content, atomically (temporary file with
/// mode 0600, synced, renamed over `file`). Throws Error(kResource) on I/O errors.
void replace_private_file(const std::filesystem::path &file, std::string_view content);

}  // namespace colony
