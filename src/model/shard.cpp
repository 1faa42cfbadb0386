#include "model/shard.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "gguf.h"
#include "model/gguf_file.h"
#include "model/hparams.h"
#include "util/error.h"

namespace colony {

std::vector<std::pair<std::string, std::string>> shard_tensor_names(const GgufFile &model,
                                                                    const ModelHparams &hp,
                                                                    LayerRange range) {
    if (range.empty() || range.last > hp.n_layer) {
        throw Error(ErrorCode::kOutOfRange, "shard range " + range.str() +
                                                " is outside the model's " +
                                                std::to_string(hp.n_layer) + " layers");
    }
    std::vector<std::pair<std::string, std::string>> names;
    auto add = [&](const std::string &n) { names.emplace_back(n, n); };
    if (range.first == 0)
        add("token_embd.weight");
    for (const char *global :
         {"rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"}) {
        if (model.find(global))
            add(global);
    }
    for (uint32_t il = range.first; il < range.last; ++il) {
        const std::string prefix = "blk." + std::to_string(il) + ".";
        for (const GgufTensor &t : model.tensors()) {
            if (t.name.rfind(prefix, 0) == 0)
                add(t.name);
        }
    }
    if (range.last == hp.n_layer) {
        add("output_norm.weight");
        names.emplace_back("output.weight",
                           model.find("output.weight") ? "output.weight" : "token_embd.weight");
    }
    for (const auto &[dst, src] : names) {
        if (!model.find(src))
            throw Error(ErrorCode::kCorrupt, model.path() + ": missing tensor '" + src + "'");
    }
    return names;
}

void write_shard(const GgufFile &model, const ModelHparams &hp, LayerRange range,
                 const std::string &model_sha256, const std::string &out_path,
                 const ModelBytesReader &read,
                 const std::function<void(uint64_t, uint64_t)> &progress) {
    const auto names = shard_tensor_names(model, hp, range);
    std::unique_ptr<gguf_context, decltype(&gguf_free)> out(gguf_init_empty(), gguf_free);
    gguf_set_kv(out.get(), model.gguf());
    gguf_set_val_u32(out.get(), "colony.shard.first", range.first);
    gguf_set_val_u32(out.get(), "colony.shard.last", range.last);
    gguf_set_val_str(out.get(), "colony.shard.model_sha256", model_sha256.c_str());

    // tensor infos: same type/shape as in the model, possibly renamed
    ggml_init_params params{ggml_tensor_overhead() * (names.size() + 1), nullptr, true};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(params), ggml_free);
    uint64_t total = 0;
    for (const auto &[dst, src] : names) {
        const GgufTensor *t = model.find(src);
        ggml_tensor *copy = ggml_dup_tensor(ctx.get(), t->meta);
        ggml_set_name(copy, dst.c_str());
        gguf_add_tensor(out.get(), copy);
        total += t->nbytes;
    }

    const std::string tmp = out_path + ".part";
    std::FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f)
        throw Error(ErrorCode::kResource, "cannot write " + tmp + ": " + std::strerror(errno));
    std::unique_ptr<std::FILE, decltype(&std::fclose)> guard(f, std::fclose);
    std::vector<uint8_t> meta(gguf_get_meta_size(out.get()));
    gguf_get_meta_data(out.get(), meta.data());
    auto put = [&](const void *data, size_t n) {
        if (std::fwrite(data, 1, n, f) != n)
            throw Error(ErrorCode::kResource,
                        "writing shard " + out_path + " failed: " + std::strerror(errno));
    };

    // tensor data in the order of the tensor table, each padded to the alignment
    std::vector<ByteRange> ranges;
    for (const auto &[dst, src] : names) {
        const GgufTensor *t = model.find(src);
        ranges.push_back({t->offset, t->nbytes});
    }
    const size_t align = gguf_get_alignment(out.get());
    size_t index = 0;
    uint64_t left = ranges.empty() ? 0 : ranges[0].size, done = 0;
    auto sink = [&](const char *data, size_t n) {
        while (n > 0) {
            if (index >= ranges.size())
                throw Error(ErrorCode::kInternal,
                            "shard " + out_path + ": more tensor bytes than the table holds");
            const size_t take = static_cast<size_t>(std::min<uint64_t>(left, n));
            put(data, take);
            data += take, n -= take, left -= take, done += take;
            if (left == 0) {
                static const char zeros[64] = {};
                put(zeros, static_cast<size_t>((align - ranges[index].size % align) % align));
                left = ++index < ranges.size() ? ranges[index].size : 0;
            }
        }
        if (progress)
            progress(done, total);
    };
    try {
        put(meta.data(), meta.size());
        read(ranges, sink);
        if (index != ranges.size())
            throw Error(ErrorCode::kCorrupt,
                        "shard " + out_path + ": the model's bytes ended after " +
                            std::to_string(done) + " of " + std::to_string(total));
        if (std::fflush(f) != 0)
            throw Error(ErrorCode::kResource,
                        "writing shard " + out_path + " failed: " + std::strerror(errno));
    } catch (...) {
        guard.reset();
        std::filesystem::remove(tmp);
        throw;
    }
    guard.reset();
    std::filesystem::rename(tmp, out_path);
}

void write_shard(const GgufFile &model, const ModelHparams &hp, LayerRange range,
                 const std::string &model_sha256, const std::string &out_path,
                 const std::function<void(uint64_t, uint64_t)> &progress) {
    auto read_file = [&](const std::vector<ByteRange> &ranges, const ByteSink &sink) {
        std::ifstream in(model.path(), std::ios::binary);
        std::vector<char> buf(1 << 20);
        for (const ByteRange &r : ranges) {
            in.seekg(static_cast<std::streamoff>(r.offset));
            for (uint64_t left = r.size; left > 0;) {
                const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
                if (!in.read(buf.data(), static_cast<std::streamsize>(n)))
                    throw Error(
                        ErrorCode::kCorrupt,
                        model.path() + ": cannot read tensor bytes at " + std::to_string(r.offset));
                sink(buf.data(), n);
                left -= n;
            }
        }
    };
    write_shard(model, hp, range, model_sha256, out_path, read_file, progress);
}

std::string sha256_file_hex(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::kNotFound, "cannot read " + path);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        if (in.gcount() > 0)
            EVP_DigestUpdate(md.get(), buf.data(), static_cast<size_t>(in.gcount()));
    }
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md.get(), digest, &len);
    static const char *hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i)
        out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
    return out;
}

}  // namespace colony
