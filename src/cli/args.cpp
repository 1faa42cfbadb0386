#include "cli/args.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "util/error.h"

namespace colony {

namespace {

std::string fmt_float(float v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

long long parse_int(const std::string &opt, const std::string &v) {
    char *end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE) {
        throw Error(ErrorCode::kInvalidArgument,
                    "option " + opt + " needs an integer, got '" + v + "'");
    }
    return x;
}

}  // namespace

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::push(const std::string &s, const std::string &l, const std::string &mv,
                     const std::string &help, std::string def,
                     std::function<void(const std::string &)> set, bool takes_value,
                     bool required) {
    Option o;
    o.short_name = s;
    o.long_name = l;
    o.metavar = mv;
    o.help = help;
    o.default_text = std::move(def);
    o.set = std::move(set);
    o.takes_value = takes_value;
    o.required = required;
    options_.push_back(std::move(o));
}

void ArgParser::add(const std::string &s, const std::string &l, const std::string &mv,
                    const std::string &help, std::string *t, bool required) {
    push(
        s, l, mv, help, t->empty() ? "" : *t, [t](const std::string &v) { *t = v; }, true,
        required);
}

void ArgParser::add(const std::string &s, const std::string &l, const std::string &mv,
                    const std::string &help, int32_t *t) {
    push(
        s, l, mv, help, std::to_string(*t),
        [t, l](const std::string &v) {
            const long long x = parse_int(l, v);
            if (x < INT32_MIN || x > INT32_MAX)
                throw Error(ErrorCode::kInvalidArgument, "option " + l + " out of range");
            *t = static_cast<int32_t>(x);
        },
        true, false);
}

void ArgParser::add(const std::string &s, const std::string &l, const std::string &mv,
                    const std::string &help, uint32_t *t) {
    push(
        s, l, mv, help, std::to_string(*t),
        [t, l](const std::string &v) {
            const long long x = parse_int(l, v);
            if (x < 0 || x > UINT32_MAX)
                throw Error(ErrorCode::kInvalidArgument, "option " + l + " must be >= 0");
            *t = static_cast<uint32_t>(x);
        },
        true, false);
}

void ArgParser::add(const std::string &s, const std::string &l, const std::string &mv,
                    const std::string &help, float *t) {
    push(
        s, l, mv, help, fmt_float(*t),
        [t, l](const std::string &v) {
            char *end = nullptr;
            const float x = std::strtof(v.c_str(), &end);
            if (v.empty() || *end != '\0') {
                throw Error(ErrorCode::kInvalidArgument,
                            "option " + l + " needs a number, got '" + v + "'");
            }
            *t = x;
        },
        true, false);
}

void ArgParser::flag(const std::string &s, const std::string &l, const std::string &help, bool *t) {
    push(
        s, l, "", help, "", [t](const std::string &) { *t = true; }, false, false);
}

void ArgParser::final_flag(const std::string &l, const std::string &help, bool *t) {
    flag("", l, help, t);
    options_.back().final = true;
}

ArgParser::Option *ArgParser::find(const std::string &name) {
    for (auto &o : options_) {
        if ((!o.short_name.empty() && o.short_name == name) || o.long_name == name)
            return &o;
    }
    return nullptr;
}

void ArgParser::parse(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            help_ = true;
            return;
        }
        std::string value;
        bool has_inline = false;
        if (arg.rfind("--", 0) == 0) {
            const size_t eq = arg.find('=');
            if (eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                has_inline = true;
            }
        }
        Option *o = find(arg);
        if (!o)
            throw Error(ErrorCode::kInvalidArgument,
                        "unknown option '" + arg + "' (see " + command_ + " --help)");
        if (o->takes_value && !has_inline) {
            if (i + 1 >= argc)
                throw Error(ErrorCode::kInvalidArgument, "option " + arg + " needs a value");
            value = argv[++i];
        }
        o->set(value);
        o->seen = true;
        if (o->final)
            return;
    }
    for (const auto &o : options_) {
        if (o.required && !o.seen) {
            throw Error(ErrorCode::kInvalidArgument, "missing required option " + o.long_name +
                                                         " (see " + command_ + " --help)");
        }
    }
}

std::string ArgParser::usage() const {
    std::ostringstream s;
    s << "usage: " << command_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
    for (const auto &o : options_) {
        std::string names =
            o.short_name.empty() ? "    " + o.long_name : o.short_name + ", " + o.long_name;
        if (o.takes_value)
            names += " " + o.metavar;
        s << "  " << names;
        const size_t pad = names.size() < 30 ? 30 - names.size() : 1;
        s << std::string(pad, ' ') << o.help;
        if (o.required)
            s << " (required)";
        else if (!o.default_text.empty())
            s << " (default: " << o.default_text << ")";
        s << "\n";
    }
    s << "  -h, --help                      show this help\n";
    return s.str();
}

LayerRange parse_layers_option(const std::string &text) {
    const size_t colon = text.find(':');
    try {
        size_t used_a = 0, used_b = 0;
        const std::string a = text.substr(0, colon),
                          b = colon == std::string::npos ? "" : text.substr(colon + 1);
        const unsigned long first = std::stoul(a, &used_a), last = std::stoul(b, &used_b);
        if (used_a == a.size() && used_b == b.size() && first < last && last <= 1u << 20 &&
            a[0] != '-' && b[0] != '-')
            return LayerRange{static_cast<uint32_t>(first), static_cast<uint32_t>(last)};
    } catch (const std::exception &) {
    }
    throw Error(ErrorCode::kInvalidArgument,
                "--layers needs FIRST:LAST with FIRST < LAST (blocks "
                "[FIRST, LAST)), got '" +
                    text + "'");
}

}  // namespace colony
