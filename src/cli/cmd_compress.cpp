// colony compress: writes a GGUF whose chosen block matrices are their
// low-rank factors (model/compress.h), and prints what each factorization
// costs in relative error and saves in bytes.
#include "cli/cmd_compress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "cli/args.h"
#include "model/compress.h"
#include "model/layer_skip.h"
#include "util/error.h"

namespace colony {
namespace {

const char *kEpilogue =
    "\nEach chosen matrix W (n_out x n_in) becomes the factors of its truncated SVD,\n"
    "lr_a (r x n_in) and lr_b (n_out x r), which colony runs as two mul_mats; the\n"
    "pair is smaller than W when r (n_in + n_out) < n_in n_out. Exact SVD (Eigen's\n"
    "BDCSVD) up to 1024 rows or columns, the randomized SVD of Halko et al. (2011)\n"
    "above. The file keeps every other tensor and key; shards, the planner and\n"
    "`colony perplexity --kl-divergence` see it like any GGUF. llama.cpp cannot\n"
    "load it. Measure the cost before using it (docs/edge.md):\n"
    "  colony perplexity -m in.gguf -f text.raw --kl-divergence-base base.kld\n"
    "  colony perplexity -m out.gguf --kl-divergence-base base.kld --kl-divergence\n"
    "\nWith --imatrix the SVD is weighted by each input channel's RMS activation\n"
    "(ASVD, Yuan et al. 2023); make the matrix with llama.cpp's tool, built beside\n"
    "colony, on text other than the one you measure with:\n"
    "  llama-imatrix -m model.gguf -f calibration.txt -o model.imatrix.gguf\n"
    "\nexample:\n"
    "  colony compress -m model.gguf -o model-lr.gguf --rank-ratio 0.5 --tensors ffn \\\n"
    "      --imatrix model.imatrix.gguf\n";

double mib(uint64_t b) {
    return static_cast<double>(b) / (1 << 20);
}

int run_compress(int argc, char **argv) {
    CompressOptions o;
    std::string kinds = "ffn", layers, type;
    uint32_t rank = 0;
    float ratio = 0;
    int32_t power = 2;
    bool quiet = false;
    ArgParser p("colony compress",
                "Write a GGUF whose chosen block matrices are replaced by low-rank factors\n"
                "(truncated SVD), smaller and lossy.");
    p.add("-m", "--model", "PATH", "GGUF model to compress", &o.in_path, true);
    p.add("-o", "--output", "PATH", "GGUF file to write (replaced if it exists)", &o.out_path,
          true);
    p.add("", "--rank", "N", "rank of every factorization (capped at the matrix's smaller side)",
          &rank);
    p.add("", "--rank-ratio", "R",
          "rank as a fraction of each matrix's full rank, in (0, 1] (one of --rank, --rank-ratio)",
          &ratio);
    p.add("", "--tensors", "LIST",
          "matrix kinds: attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up, "
          "ffn_down, or the groups attn, ffn, all (default ffn)",
          &kinds);
    p.add("", "--layers", "LIST", "blocks to compress, e.g. 0-3,7 (default every block)", &layers);
    p.add("", "--type", "TYPE",
          "type of the factors (default: each matrix's own where it can be written without an "
          "importance matrix, else f16)",
          &type);
    p.add("", "--imatrix", "FILE",
          "importance matrix of the model from llama-imatrix (GGUF): factorize each matrix "
          "weighted by its inputs' RMS activations (ASVD), far less lossy than plain SVD",
          &o.imatrix_path);
    p.add("", "--power-iterations", "N",
          "power iterations of the randomized SVD (large matrices only)", &power);
    int32_t threads =
        static_cast<int32_t>(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
    p.add("-t", "--threads", "N",
          "matrices factorized at once, each on a thread (memory: about 24 bytes per weight of "
          "each; default: the cores, at most 4)",
          &threads);
    p.flag("-q", "--quiet", "no progress or per-tensor output", &quiet);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s%s", p.usage().c_str(), kEpilogue);
            return 0;
        }
    }
    p.parse(argc, argv);
    o.rank = rank;
    o.rank_ratio = ratio;
    o.kinds = parse_compress_kinds(kinds);
    o.blocks = parse_block_list(layers, "--layers");
    if (!type.empty())
        o.type = parse_factor_type(type);
    if (power < 0 || power > 10)
        throw Error(ErrorCode::kInvalidArgument, "--power-iterations must be in [0, 10]");
    o.power_iterations = power;
    if (threads < 1)
        throw Error(ErrorCode::kInvalidArgument, "--threads must be at least 1");
    o.n_threads = threads;
    const bool tty = isatty(STDERR_FILENO) != 0;
    // progress: rewritten in place on a terminal, a line every 10 s otherwise
    auto last = std::chrono::steady_clock::now();
    if (!quiet) {
        o.on_progress = [tty, &last](size_t i, size_t n, const std::string &name) {
            const auto now = std::chrono::steady_clock::now();
            if (!tty && now - last < std::chrono::seconds(10))
                return;
            last = now;
            std::fprintf(stderr, "%scolony compress: tensor %zu/%zu %-40s%s", tty ? "\r" : "",
                         i + 1, n, name.c_str(), tty ? "" : "\n");
            std::fflush(stderr);
        };
    }
    const auto t0 = std::chrono::steady_clock::now();
    const CompressResult r = compress_gguf(o);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (quiet)
        return 0;
    if (tty)
        std::fprintf(stderr, "\r%80s\r", "");
    uint64_t before = 0, after = 0;
    for (const CompressedTensor &c : r.tensors) {
        std::fprintf(stderr,
                     "colony compress: %-28s %5lld x %-5lld rank %-5lld %-5s %-5s error %.4f, %.2f "
                     "-> %.2f MiB\n",
                     c.name.c_str(), static_cast<long long>(c.n_out),
                     static_cast<long long>(c.n_in), static_cast<long long>(c.rank),
                     ggml_type_name(c.type_a), ggml_type_name(c.type_b), c.rel_error,
                     mib(c.bytes_before), mib(c.bytes_after));
        before += c.bytes_before;
        after += c.bytes_after;
    }
    std::fprintf(stderr,
                 "colony compress: wrote %s: %zu matrices factorized, %.2f -> %.2f MiB of them; "
                 "file %.2f -> %.2f MiB (%.2fx) in %.1f s\n",
                 o.out_path.c_str(), r.tensors.size(), mib(before), mib(after),
                 mib(r.file_bytes_before), mib(r.file_bytes_after),
                 static_cast<double>(r.file_bytes_after) /
                     static_cast<double>(std::max<uint64_t>(1, r.file_bytes_before)),
                 secs);
    return 0;
}

}  // namespace

int cmd_compress(int argc, char **argv) {
    try {
        return run_compress(argc, argv);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "colony compress: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace colony
