#include "model/compress.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>

#include "gguf.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "model/layer_skip.h"
#include "model/low_rank.h"
#include "model/mapped_file.h"
#include "util/error.h"

namespace colony {
namespace {

const char *const kKinds[] = {"attn_q",      "attn_k",   "attn_v", "attn_qkv",
                              "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// Types ggml_quantize_chunk writes without an importance matrix.
constexpr ggml_type kFactorTypes[] = {
    GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,  GGML_TYPE_Q4_0,
    GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q2_K,  GGML_TYPE_Q3_K,
    GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL};

bool factor_type_ok(ggml_type t) {
    return std::find(std::begin(kFactorTypes), std::end(kFactorTypes), t) != std::end(kFactorTypes);
}

/// One tensor of the output: copied, or one matrix's factors.
struct Item {
    const GgufTensor *src = nullptr;
    bool factorize = false;
    CompressedTensor info;
};

// "blk.N.KIND.weight" -> (N, KIND); false for any other name.
bool block_matrix(const std::string &name, uint32_t &block, std::string &kind) {
    unsigned n = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "blk.%u.%n", &n, &used) != 1 || used == 0)
        return false;
    const std::string rest = name.substr(static_cast<size_t>(used));
    const std::string suffix = ".weight";
    if (rest.size() <= suffix.size() ||
        rest.compare(rest.size() - suffix.size(), suffix.size(), suffix) != 0)
        return false;
    block = n;
    kind = rest.substr(0, rest.size() - suffix.size());
    return true;
}

int64_t choose_rank(const CompressOptions &o, int64_t full, ggml_type type_b) {
    int64_t r = o.rank > 0
                    ? o.rank
                    : static_cast<int64_t>(std::ceil(o.rank_ratio * static_cast<double>(full)));
    const int64_t blck = ggml_blck_size(type_b);
    const int64_t rounded = (r + blck - 1) / blck * blck;
    if (rounded <= full)
        r = rounded;
    return std::clamp<int64_t>(r, 1, full);
}

void plan_factors(const CompressOptions &o, Item &it) {
    const ggml_tensor *m = it.src->meta;
    CompressedTensor &c = it.info;
    c.name = it.src->name;
    c.n_in = m->ne[0];
    c.n_out = m->ne[1];
    const ggml_type base = o.type ? *o.type : factor_type_ok(m->type) ? m->type : GGML_TYPE_F16;
    c.rank = choose_rank(o, std::min(c.n_in, c.n_out), base);
    c.type_a = c.n_in % ggml_blck_size(base) == 0 ? base : GGML_TYPE_F16;
    c.type_b = c.rank % ggml_blck_size(base) == 0 ? base : GGML_TYPE_F16;
    c.bytes_before = it.src->nbytes;
    c.bytes_after = ggml_row_size(c.type_a, c.n_in) * static_cast<size_t>(c.rank) +
                    ggml_row_size(c.type_b, c.rank) * static_cast<size_t>(c.n_out);
}

std::vector<Item> plan(const CompressOptions &o, const GgufFile &file, uint32_t n_layer) {
    check_blocks_exist(o.blocks, n_layer, "--layers");
    std::vector<Item> items;
    size_t n_factorized = 0;
    for (const GgufTensor &t : file.tensors()) {
        Item it;
        it.src = &t;
        uint32_t block = 0;
        std::string kind;
        it.factorize = block_matrix(t.name, block, kind) && ggml_n_dims(t.meta) == 2 &&
                       std::find(o.kinds.begin(), o.kinds.end(), kind) != o.kinds.end() &&
                       (o.blocks.empty() ||
                        std::find(o.blocks.begin(), o.blocks.end(), block) != o.blocks.end());
        if (it.factorize) {
            plan_factors(o, it);
            ++n_factorized;
        }
        items.push_back(std::move(it));
    }
    if (n_factorized == 0)
        throw Error(ErrorCode::kInvalidArgument,
                    file.path() + " has no matrix of the kinds and blocks chosen");
    return items;
}

void check_options(const CompressOptions &o) {
    if (o.in_path.empty() || o.out_path.empty())
        throw Error(ErrorCode::kInvalidArgument, "give the input (-m) and the output (-o)");
    if ((o.rank > 0) == (o.rank_ratio > 0))
        throw Error(ErrorCode::kInvalidArgument, "give one of --rank N and --rank-ratio R");
    if (o.rank < 0)
        throw Error(ErrorCode::kInvalidArgument, "--rank must be at least 1");
    if (o.rank == 0 && !(o.rank_ratio > 0 && o.rank_ratio <= 1))
        throw Error(ErrorCode::kInvalidArgument, "--rank-ratio must be in (0, 1]");
    if (o.kinds.empty())
        throw Error(ErrorCode::kInvalidArgument, "no matrix kinds chosen");
    if (o.type && !factor_type_ok(*o.type))
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("--type ") + ggml_type_name(*o.type) +
                        " cannot be written without an importance matrix; use f32, f16, bf16, "
                        "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K or iq4_nl");
}

std::vector<float> to_f32(const GgufTensor &t, const uint8_t *bytes) {
    std::vector<float> out(static_cast<size_t>(ggml_nelements(t.meta)));
    if (t.meta->type == GGML_TYPE_F32) {
        std::memcpy(out.data(), bytes, out.size() * sizeof(float));
        return out;
    }
    const ggml_type_traits *tt = ggml_get_type_traits(t.meta->type);
    if (!tt->to_float)
        throw Error(ErrorCode::kUnsupported, t.name + ": type " + ggml_type_name(t.meta->type) +
                                                 " cannot be read as floats");
    tt->to_float(bytes, out.data(), static_cast<int64_t>(out.size()));
    return out;
}

std::vector<uint8_t> quantize(ggml_type type, const std::vector<float> &x, int64_t n_per_row) {
    const int64_t rows = static_cast<int64_t>(x.size()) / n_per_row;
    std::vector<uint8_t> out(ggml_row_size(type, n_per_row) * static_cast<size_t>(rows));
    ggml_quantize_chunk(type, x.data(), out.data(), 0, rows, n_per_row, nullptr);
    return out;
}

uint64_t seed_for(uint64_t seed, const std::string &name) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (unsigned char c : name)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

/// Per-input-channel RMS activations of the chosen matrices, from
/// llama-imatrix's GGUF output.
class ImportanceMatrix {
  public:
    explicit ImportanceMatrix(const std::string &path)
        : file_(GgufFile::open(path)), map_(path, 0, file_->file_size(), false) {}

    /// sqrt(in_sum2 / count) for matrix `name` with n_in input channels;
    /// channels that never fired get 1e-6 of the largest, so 1/s stays finite.
    std::vector<float> input_scale(const std::string &name, int64_t n_in) const {
        const GgufTensor *sum2 = file_->find(name + ".in_sum2");
        const GgufTensor *counts = file_->find(name + ".counts");
        if (!sum2 || !counts)
            throw Error(ErrorCode::kCorrupt,
                        file_->path() + ": the importance matrix has no entry for " + name);
        if (sum2->meta->type != GGML_TYPE_F32 || counts->meta->type != GGML_TYPE_F32 ||
            sum2->meta->ne[0] != n_in || ggml_nelements(sum2->meta) != n_in ||
            ggml_nelements(counts->meta) != 1)
            throw Error(ErrorCode::kCorrupt, file_->path() + ": the importance matrix of " + name +
                                                 " does not fit its " + std::to_string(n_in) +
                                                 " input channels");
        float count = 0;
        std::memcpy(&count, map_.data() + counts->offset, sizeof(float));
        const auto *s2 = reinterpret_cast<const float *>(map_.data() + sum2->offset);
        std::vector<float> scale(static_cast<size_t>(n_in));
        float top = 0;
        for (int64_t j = 0; j < n_in; ++j) {
            const float ms = count > 0 ? s2[j] / count : 0.0f;
            scale[j] = std::isfinite(ms) && ms > 0 ? std::sqrt(ms) : 0.0f;
            top = std::max(top, scale[j]);
        }
        if (!(top > 0))
            throw Error(ErrorCode::kCorrupt, file_->path() + ": the importance matrix of " + name +
                                                 " has no activations");
        for (float &x : scale)
            x = std::max(x, 1e-6f * top);
        return scale;
    }

  private:
    std::unique_ptr<GgufFile> file_;
    MappedRange map_;
};

class Writer {
  public:
    explicit Writer(const std::string &path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
        if (!f_)
            throw Error(ErrorCode::kResource, "cannot write " + path + ": " + std::strerror(errno));
    }
    ~Writer() {
        if (f_)
            std::fclose(f_);
    }
    void put(const void *data, size_t n) {
        if (n > 0 && std::fwrite(data, 1, n, f_) != n)
            throw Error(ErrorCode::kResource,
                        "writing " + path_ + " failed: " + std::strerror(errno));
        written_ += n;
    }
    void pad(size_t align) {
        static const uint8_t zeros[64] = {};
        put(zeros, (align - written_ % align) % align);
    }
    void close() {
        const bool ok = std::fflush(f_) == 0;
        const bool closed = std::fclose(f_) == 0;
        f_ = nullptr;
        if (!ok || !closed)
            throw Error(ErrorCode::kResource,
                        "writing " + path_ + " failed: " + std::strerror(errno));
    }
    uint64_t written() const { return written_; }

  private:
    std::string path_;
    std::FILE *f_;
    uint64_t written_ = 0;
};

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;
using GgmlPtr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

void add_tensor(gguf_context *out, ggml_context *ctx, const std::string &name, ggml_type type,
                int64_t ne0, int64_t ne1) {
    ggml_tensor *t = ggml_new_tensor_2d(ctx, type, ne0, ne1);
    ggml_set_name(t, name.c_str());
    gguf_add_tensor(out, t);
}

// The output's metadata: every input key, what was done, and the tensor table.
GgufPtr output_meta(const GgufFile &file, const CompressOptions &o, const std::vector<Item> &items,
                    GgmlPtr &ctx) {
    GgufPtr out(gguf_init_empty(), gguf_free);
    gguf_set_kv(out.get(), file.gguf());
    if (o.rank > 0)
        gguf_set_val_u32(out.get(), "colony.compress.rank", static_cast<uint32_t>(o.rank));
    else
        gguf_set_val_f32(out.get(), "colony.compress.rank_ratio", static_cast<float>(o.rank_ratio));
    if (!o.imatrix_path.empty())
        gguf_set_val_bool(out.get(), "colony.compress.imatrix", true);
    std::string kinds;
    for (const std::string &k : o.kinds)
        kinds += (kinds.empty() ? "" : ",") + k;
    gguf_set_val_str(out.get(), "colony.compress.kinds", kinds.c_str());
    ctx.reset(ggml_init({ggml_tensor_overhead() * (2 * items.size() + 1), nullptr, true}));
    for (const Item &it : items) {
        if (!it.factorize) {
            ggml_tensor *copy = ggml_dup_tensor(ctx.get(), it.src->meta);
            ggml_set_name(copy, it.src->name.c_str());
            gguf_add_tensor(out.get(), copy);
            continue;
        }
        const CompressedTensor &c = it.info;
        add_tensor(out.get(), ctx.get(), c.name + ".lr_a", c.type_a, c.n_in, c.rank);
        add_tensor(out.get(), ctx.get(), c.name + ".lr_b", c.type_b, c.rank, c.n_out);
    }
    return out;
}

/// One matrix's factors, quantized: lr_a's and lr_b's bytes.
struct Factored {
    std::vector<uint8_t> a, b;
    double rel_error = 0;
};

Factored factor(const CompressOptions &o, const CompressedTensor &c, const GgufTensor &src,
                const uint8_t *bytes, const ImportanceMatrix *imatrix) {
    const std::vector<float> weights = to_f32(src, bytes);
    const std::vector<float> scale =
        imatrix ? imatrix->input_scale(c.name, c.n_in) : std::vector<float>{};
    const LowRankFactors f =
        factorize_low_rank(weights.data(), c.n_in, c.n_out, c.rank, seed_for(o.seed, c.name),
                           o.power_iterations, 1024, scale.empty() ? nullptr : scale.data());
    return {quantize(c.type_a, f.a, c.n_in), quantize(c.type_b, f.b, c.rank), f.rel_error};
}

void write_all(const GgufFile &file, const CompressOptions &o, std::vector<Item> &items,
               const std::string &path) {
    GgmlPtr ctx(nullptr, ggml_free);
    GgufPtr meta = output_meta(file, o, items, ctx);
    const size_t align = gguf_get_alignment(meta.get());
    const MappedRange map(file.path(), 0, file.file_size(), /*populate=*/false);
    std::optional<ImportanceMatrix> imatrix;
    if (!o.imatrix_path.empty())
        imatrix.emplace(o.imatrix_path);
    // the factorizations run on up to n_threads threads ahead of the writer,
    // which writes every tensor in the table's order
    std::deque<std::pair<size_t, std::future<Factored>>> ahead;
    size_t next = 0;  // the next item to start factorizing
    auto launch = [&] {
        for (; next < items.size() && ahead.size() < static_cast<size_t>(std::max(1, o.n_threads));
             ++next) {
            if (!items[next].factorize)
                continue;
            const Item &it = items[next];
            ahead.emplace_back(
                next, std::async(std::launch::async, factor, std::cref(o), std::cref(it.info),
                                 std::cref(*it.src), map.data() + it.src->offset,
                                 imatrix ? &*imatrix : nullptr));
        }
    };
    Writer w(path);
    std::vector<uint8_t> header(gguf_get_meta_size(meta.get()));
    gguf_get_meta_data(meta.get(), header.data());
    w.put(header.data(), header.size());
    for (size_t i = 0; i < items.size(); ++i) {
        Item &it = items[i];
        if (o.on_progress)
            o.on_progress(i, items.size(), it.src->name);
        launch();
        if (!it.factorize) {
            w.put(map.data() + it.src->offset, it.src->nbytes);
            w.pad(align);
            continue;
        }
        const Factored f = ahead.front().second.get();  // items[i]: factorized in order
        ahead.pop_front();
        it.info.rel_error = f.rel_error;
        w.put(f.a.data(), f.a.size());
        w.pad(align);
        w.put(f.b.data(), f.b.size());
        w.pad(align);
    }
    w.close();
}

}  // namespace

ggml_type parse_factor_type(const std::string &name) {
    auto lower = [](std::string x) {
        std::transform(x.begin(), x.end(), x.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        return x;
    };
    for (ggml_type t : kFactorTypes)
        if (lower(ggml_type_name(t)) == lower(name))
            return t;
    throw Error(ErrorCode::kInvalidArgument,
                "--type '" + name +
                    "' is not a factor type; use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, "
                    "q2_K, q3_K, q4_K, q5_K, q6_K or iq4_nl");
}

std::vector<std::string> parse_compress_kinds(const std::string &list) {
    std::vector<std::string> out;
    auto add = [&out](const std::string &k) {
        if (std::find(out.begin(), out.end(), k) == out.end())
            out.push_back(k);
    };
    size_t start = 0;
    while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        const std::string item = list.substr(start, comma - start);
        start = comma + 1;
        if (item == "all" || item == "attn" || item == "ffn") {
            for (const char *k : kKinds)
                if (item == "all" || std::string(k).rfind(item + "_", 0) == 0)
                    add(k);
            continue;
        }
        if (std::find_if(std::begin(kKinds), std::end(kKinds),
                         [&](const char *k) { return item == k; }) == std::end(kKinds))
            throw Error(ErrorCode::kInvalidArgument,
                        "--tensors: unknown matrix kind '" + item +
                            "' (use attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, "
                            "ffn_up, ffn_down, attn, ffn or all)");
        add(item);
    }
    return out;
}

CompressResult compress_gguf(const CompressOptions &opts) {
    check_options(opts);
    const auto file = GgufFile::open(opts.in_path);
    const ModelHparams hp = ModelHparams::from_gguf(*file);
    std::vector<Item> items = plan(opts, *file, hp.n_layer);
    const std::string partial = opts.out_path + ".partial";
    try {
        write_all(*file, opts, items, partial);
        std::error_code ec;
        std::filesystem::rename(partial, opts.out_path, ec);
        if (ec)
            throw Error(ErrorCode::kResource,
                        "cannot rename " + partial + " to " + opts.out_path + ": " + ec.message());
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(partial, ec);
        throw;
    }
    CompressResult r;
    r.file_bytes_before = file->file_size();
    std::error_code ec;
    r.file_bytes_after = std::filesystem::file_size(opts.out_path, ec);
    for (Item &it : items)
        if (it.factorize)
            r.tensors.push_back(std::move(it.info));
    return r;
}

}  // namespace colony
