// colony's subcommands. Each takes the subcommand's own argv (argv[0] is the
// subcommand name), returns the process exit code, and lets colony::Error
// escape to main(), which prints it as one line.
#pragma once

namespace colony {

int cmd_generate(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_join(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_shard(int argc, char **argv);

}  // namespace colony
