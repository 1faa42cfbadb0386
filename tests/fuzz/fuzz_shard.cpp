// Shard validation: what a worker does with a shard file it was sent or found
// in its cache once the hash matched (worker_data.cpp, WorkerData::apply):
// open it (gguf_check, ggml's reader), read its hparams and load the stage's
// weights for its layer range with tensor shapes checked against them.
#include <cstdint>

#include "fuzz_util.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "util/log.h"

namespace {
void quiet(ggml_log_level, const char *, void *) {}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    ggml_log_set(quiet, nullptr);
    colony::set_log_level(colony::LogLevel::kQuiet);
    ggml_backend_load_all();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace colony;
    const fuzz::MemFile file(data, size);
    fuzz::expect_clean("shard", [&] {
        const auto gguf = GgufFile::open(file.path());
        const ModelHparams hp = ModelHparams::from_gguf(*gguf);
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        WeightLoadOptions opts;
        opts.use_repack = false;
        const StageWeights w(*gguf, hp, LayerRange{0, hp.n_layer}, cpu, opts);
        (void)w.bytes();
    });
    return 0;
}
