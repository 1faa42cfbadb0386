// colony synth: write a synthetic GGUF model (random weights, real shapes, real
// tokenizer) for tests and benchmarks; see model/synth.h.
#pragma once

namespace colony {

/// Runs `colony synth`. argv[0] is the subcommand name ("synth"); options as in
/// `colony synth --help`. Returns 0 on success, 1 on any error (after printing
/// one line "colony synth: error: ..." to stderr); colony::Error does not escape.
int cmd_synth(int argc, char **argv);

}  // namespace colony
