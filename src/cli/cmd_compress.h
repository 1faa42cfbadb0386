// colony compress: low-rank factorization of a model's block matrices; see
// model/compress.h.
#pragma once

namespace colony {

/// Runs `colony compress`. argv[0] is "compress"; options as in `colony
/// compress --help`. Returns 0 on success, 1 on any error (one line "colony
/// compress: error: ..." on stderr).
int cmd_compress(int argc, char **argv);

}  // namespace colony
