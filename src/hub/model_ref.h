// Naming a model to fetch: a catalog name, or a hub repo with a file or a
// quant type, the forms llama.cpp's -hf and ollama users know.
//   qwen3-30b-a3b                  a name of colony's catalog (model_catalog())
//   owner/repo:File-Q4_K_M.gguf    a file of a repo
//   owner/repo:Q8_0                the repo's single-file GGUF of that quant type
//   owner/repo                     the same with Q4_K_M
//   hf:owner/repo[:...]            the same; the prefix only says "not a local path"
// A revision other than main: owner/repo@v1.0:FILE.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace colony {

struct ModelRef {
    std::string repo;              // "owner/name"
    std::string file;              // a path in the repo, or "" to choose by `quant`
    std::string quant = "Q4_K_M";  // used when `file` is empty
    std::string revision = "main";
    std::string catalog_name;  // the name it came from, if any
};

/// One model of the catalog. Only architectures colony runs are listed.
struct CatalogEntry {
    const char *name;  // what `colony pull NAME` takes
    const char *repo;
    const char *file;
    const char *arch;   // GGUF general.architecture
    const char *about;  // parameters, size of the file
};

/// The built-in catalog: GGUF models for devices, Q4_K_M where the repo has it.
std::span<const CatalogEntry> model_catalog();

/// The catalog entry of `name` (case-insensitive), or nullptr.
const CatalogEntry *find_catalog_entry(const std::string &name);

/// Parses the forms above. Error(kInvalidArgument) naming the form expected
/// for anything else (an empty repo part, a file that is not .gguf, ...).
ModelRef parse_model_ref(const std::string &text);

/// Whether a -m argument names a hub model rather than a local file: "hf:"
/// first, or not an existing path and either a catalog name or
/// "owner/repo[...]" without a .gguf ending on its repo part.
bool is_model_ref(const std::string &text);

/// The file of `quant` among a repo's `files`: a .gguf whose name holds the
/// quant type as a whole word (case-insensitive), the shortest such name when
/// several do. Error(kNotFound) listing the quant types the repo has; a model
/// split into several files ("-00001-of-00003") is Error(kUnsupported).
std::string pick_quant_file(const std::vector<std::string> &files, const std::string &quant,
                            const std::string &repo);

}  // namespace colony
