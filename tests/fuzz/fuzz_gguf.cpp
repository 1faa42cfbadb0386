// GGUF header and metadata: colony's check (gguf_check.h), then what runs on a
// file the check passes: ggml's gguf reader (GgufFile), colony's hparams, and
// libllama's vocabulary-only load (Tokenizer). An abort anywhere is a crash.
#include <cstdint>

#include "fuzz_util.h"
#include "ggml.h"
#include "llama.h"
#include "model/gguf_check.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "runtime/tokenizer.h"
#include "util/log.h"

namespace {
void quiet(ggml_log_level, const char *, void *) {}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    ggml_log_set(quiet, nullptr);
    llama_log_set(quiet, nullptr);
    colony::set_log_level(colony::LogLevel::kQuiet);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    bool passed = false;
    fuzz::expect_clean("check_gguf", [&] {
        check_gguf({data, size}, "input");
        passed = true;
    });
    if (!passed)
        return 0;
    const fuzz::MemFile file(data, size);
    fuzz::expect_clean("GgufFile", [&] {
        const auto gguf = GgufFile::open(file.path());
        (void)ModelHparams::from_gguf(*gguf);
    });
    fuzz::expect_clean("Tokenizer", [&] {
        const Tokenizer tok(file.path());
        for (int32_t t : tok.tokenize("Once upon a time <s>\n", true, true))
            (void)tok.piece(t);
    });
    return 0;
}
