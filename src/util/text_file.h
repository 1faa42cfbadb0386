// Whole small text files (templates, configuration) read into a string.
#pragma once

#include <string>

namespace colony {

/// The bytes of the file at `path`. Errors: Error(kNotFound) naming the path
/// when it cannot be opened or read; kInvalidArgument when it is larger than
/// `max_bytes`.
std::string read_text_file(const std::string &path, size_t max_bytes = 16u << 20);

}  // namespace colony
