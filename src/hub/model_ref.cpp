#include "hub/model_ref.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <regex>
#include <set>

#include "util/error.h"

namespace colony {

namespace {

// Repos and files as published on huggingface.co (checked against the hub's
// file lists); Q4_K_M, and the file the publisher recommends where that is
// another type (gpt-oss ships MXFP4).
constexpr std::array<CatalogEntry, 19> kCatalog{{
    {"tinyllama-1.1b", "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
     "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "llama", "1.1B, 0.67 GB"},
    {"llama-3.2-1b", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
     "llama", "1.2B, 0.81 GB"},
    {"llama-3.2-3b", "bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
     "llama", "3.2B, 2.0 GB"},
    {"llama-3.1-8b", "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
     "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama", "8.0B, 4.9 GB"},
    {"qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf",
     "qwen2", "0.5B, 0.49 GB"},
    {"qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf",
     "qwen2", "1.5B, 1.1 GB"},
    {"qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct-GGUF", "qwen2.5-3b-instruct-q4_k_m.gguf", "qwen2",
     "3.1B, 2.1 GB"},
    {"qwen2.5-7b", "bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "qwen2",
     "7.6B, 4.7 GB"},
    {"qwen3-0.6b", "unsloth/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q4_K_M.gguf", "qwen3", "0.6B, 0.40 GB"},
    {"qwen3-1.7b", "unsloth/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q4_K_M.gguf", "qwen3", "1.7B, 1.1 GB"},
    {"qwen3-4b", "Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", "qwen3", "4.0B, 2.5 GB"},
    {"qwen3-8b", "Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf", "qwen3", "8.2B, 5.0 GB"},
    {"qwen3-14b", "Qwen/Qwen3-14B-GGUF", "Qwen3-14B-Q4_K_M.gguf", "qwen3", "14.8B, 9.0 GB"},
    {"qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B-GGUF", "Qwen3-30B-A3B-Q4_K_M.gguf", "qwen3moe",
     "30.5B (3.3B active), 18.6 GB"},
    {"qwen1.5-moe-a2.7b", "Qwen/Qwen1.5-MoE-A2.7B-Chat-GGUF", "qwen1_5-moe-a2_7b-chat-q4_k_m.gguf",
     "qwen2moe", "14.3B (2.7B active), 8.8 GB"},
    {"gemma-3-1b", "ggml-org/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf", "gemma3",
     "1.0B, 0.81 GB"},
    {"gemma-3-4b", "ggml-org/gemma-3-4b-it-GGUF", "gemma-3-4b-it-Q4_K_M.gguf", "gemma3",
     "3.9B, 2.5 GB"},
    {"phi-3.5-mini", "bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf",
     "phi3", "3.8B, 2.4 GB"},
    {"gpt-oss-20b", "ggml-org/gpt-oss-20b-GGUF", "gpt-oss-20b-mxfp4.gguf", "gpt-oss",
     "20.9B (3.6B active), 12.1 GB"},
}};

std::string lower(std::string s) {
    for (char &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool ends_with(const std::string &s, const std::string &tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

[[noreturn]] void bad(const std::string &text, const std::string &why) {
    throw Error(ErrorCode::kInvalidArgument,
                "model '" + text + "': " + why +
                    " (expected a catalog name, see `colony pull --list`, or "
                    "owner/repo[@REV][:FILE.gguf|:QUANT])");
}

bool valid_repo(const std::string &repo) {
    static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*");
    return std::regex_match(repo, re) && repo.find("..") == std::string::npos;
}

/// The quant type in a GGUF file name ("Q4_K_M", "IQ4_XS", "F16", "MXFP4"), or "".
std::string quant_of(const std::string &file) {
    static const std::regex re(
        "(^|[-._])((I?Q[0-9]_[A-Z0-9_]*[A-Z0-9])|(I?Q[0-9])|BF16|F16|F32|MXFP4)(\\.|-)",
        std::regex::icase);
    std::smatch m;
    return std::regex_search(file, m, re) ? m[2].str() : std::string();
}

}  // namespace

std::span<const CatalogEntry> model_catalog() {
    return kCatalog;
}

const CatalogEntry *find_catalog_entry(const std::string &name) {
    const std::string n = lower(name);
    for (const CatalogEntry &e : kCatalog) {
        if (n == e.name)
            return &e;
    }
    return nullptr;
}

ModelRef parse_model_ref(const std::string &text) {
    std::string s = text;
    if (s.rfind("hf:", 0) == 0)
        s.erase(0, 3);
    if (s.empty())
        bad(text, "empty");
    if (const CatalogEntry *e = find_catalog_entry(s))
        return ModelRef{e->repo, e->file, "", "main", e->name};
    ModelRef ref;
    const size_t colon = s.find(':');
    std::string repo = s.substr(0, colon);
    const std::string rest = colon == std::string::npos ? std::string() : s.substr(colon + 1);
    if (const size_t at = repo.find('@'); at != std::string::npos) {
        ref.revision = repo.substr(at + 1);
        repo.resize(at);
        if (ref.revision.empty() || ref.revision.find_first_of("/\\ ") != std::string::npos)
            bad(text, "bad revision after '@'");
    }
    if (!valid_repo(repo))
        bad(text, "'" + repo + "' is not owner/repo");
    ref.repo = repo;
    if (ends_with(lower(rest), ".gguf")) {
        if (rest.find("..") != std::string::npos || rest[0] == '/')
            bad(text, "file '" + rest + "' is not a path inside the repo");
        ref.file = rest;
        ref.quant.clear();
    } else if (!rest.empty()) {
        if (rest.find_first_of("/.") != std::string::npos)
            bad(text, "'" + rest + "' is neither a .gguf file nor a quant type");
        ref.quant = rest;
    }
    return ref;
}

bool is_model_ref(const std::string &text) {
    if (text.rfind("hf:", 0) == 0)
        return true;
    std::error_code ec;
    if (text.empty() || std::filesystem::exists(text, ec))
        return false;
    if (find_catalog_entry(text))
        return true;
    const std::string repo = text.substr(0, text.find_first_of(":@"));
    return valid_repo(repo) && !ends_with(lower(repo), ".gguf");
}

std::string pick_quant_file(const std::vector<std::string> &files, const std::string &quant,
                            const std::string &repo) {
    static const std::regex split_re("-[0-9]{5}-of-[0-9]{5}\\.gguf$", std::regex::icase);
    std::vector<std::string> matches;
    std::set<std::string> quants;
    bool split = false;
    for (const std::string &f : files) {
        if (!ends_with(lower(f), ".gguf") || lower(f).find("mmproj") != std::string::npos)
            continue;
        const std::string q = quant_of(f.substr(f.rfind('/') + 1));
        if (!q.empty())
            quants.insert(lower(q));
        if (lower(q) != lower(quant))
            continue;
        if (std::regex_search(f, split_re))
            split = true;
        else
            matches.push_back(f);
    }
    if (matches.empty()) {
        if (split)
            throw Error(ErrorCode::kUnsupported,
                        repo + ": its " + quant +
                            " model is split into several files, which colony "
                            "cannot pull yet; name another quant type or repo");
        std::string have;
        for (const std::string &q : quants)
            have += (have.empty() ? "" : ", ") + q;
        throw Error(ErrorCode::kNotFound,
                    repo + " has no single-file " + quant + " GGUF" +
                        (have.empty() ? " (it has no GGUF file)" : "; it has: " + have));
    }
    return *std::min_element(matches.begin(), matches.end(),
                             [](const std::string &a, const std::string &b) {
                                 return a.size() != b.size() ? a.size() < b.size() : a < b;
                             });
}

}  // namespace colony
