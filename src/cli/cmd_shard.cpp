// colony shard: write the GGUF shard of a layer range from a local model, the
// file a coordinator sends a worker (model/shard.h), e.g. to copy by hand to a
// device that joins with --model-dir.
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/layer_range.h"
#include "model/shard.h"

namespace colony {

int cmd_shard(int argc, char **argv) {
    std::string model, layers, out;
    ArgParser p("colony shard",
                "Write the shard of blocks [A, B) of a GGUF model: its metadata, those blocks'\n"
                "tensors, and the embedding or head where the range starts or ends the model.");
    p.add("-m", "--model", "PATH", "GGUF model file", &model, true);
    p.add("", "--layers", "A:B", "the blocks of the shard", &layers, true);
    p.add("-o", "--output", "PATH", "shard file to write", &out, true);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    const LayerRange range = parse_layers_option(layers);
    const auto file = GgufFile::open(model);
    write_shard(*file, ModelHparams::from_gguf(*file), range, sha256_file_hex(model), out);
    std::printf("%s\n", out.c_str());
    return 0;
}

}  // namespace colony
