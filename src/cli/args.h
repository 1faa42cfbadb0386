// A small command-line option parser for colony's subcommands.
//
// Options are declared with a target variable, then parse() fills them:
//   ArgParser p("colony generate", "Generate text from a prompt.");
//   p.add("-m", "--model", "PATH", "GGUF model file", &model, /*required=*/true);
//   p.flag("", "--chat", "wrap the prompt in the chat template", &chat);
// Errors (unknown option, missing value, bad number) throw
// Error(kInvalidArgument) naming the option; --help sets help_requested().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/layer_range.h"

namespace colony {

class ArgParser {
  public:
    ArgParser(std::string command, std::string summary);

    void add(const std::string &short_name, const std::string &long_name,
             const std::string &metavar, const std::string &help, std::string *target,
             bool required = false);
    void add(const std::string &short_name, const std::string &long_name,
             const std::string &metavar, const std::string &help, int32_t *target);
    void add(const std::string &short_name, const std::string &long_name,
             const std::string &metavar, const std::string &help, uint32_t *target);
    void add(const std::string &short_name, const std::string &long_name,
             const std::string &metavar, const std::string &help, float *target);
    void flag(const std::string &short_name, const std::string &long_name, const std::string &help,
              bool *target);
    /// A flag that ends parsing when seen, as --help does (required options
    /// are not checked then): e.g. --list-devices.
    void final_flag(const std::string &long_name, const std::string &help, bool *target);

    /// Parses argv[1..argc) (argv[0] is the subcommand name).
    void parse(int argc, char **argv);
    bool help_requested() const { return help_; }
    std::string usage() const;

  private:
    struct Option {
        std::string short_name, long_name, metavar, help, default_text;
        bool takes_value = true;
        bool required = false;
        bool final = false;  // final_flag
        bool seen = false;
        std::function<void(const std::string &)> set;
    };
    std::string command_, summary_;
    std::vector<Option> options_;
    bool help_ = false;
    Option *find(const std::string &name);
    void push(const std::string &s, const std::string &l, const std::string &mv,
              const std::string &help, std::string def,
              std::function<void(const std::string &)> set, bool takes_value, bool required);
};

/// The value of --layers, "A:B" with A < B: blocks [A, B). Error(kInvalidArgument)
/// otherwise.
LayerRange parse_layers_option(const std::string &text);

}  // namespace colony
