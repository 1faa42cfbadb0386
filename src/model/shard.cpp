#include "model/shard.h"

#include <openssl/evp.h>

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
    bool ok = std::fwrite(meta.data(), 1, meta.size(), f) == meta.size();

    // tensor data, each padded to the alignment, copied from the model file
    std::ifstream in(model.path(), std::ios::binary);
    const size_t align = gguf_get_alignment(out.get());
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    for (size_t i = 0; ok && i < names.size(); ++i) {
        const GgufTensor *t = model.find(names[i].second);
        in.seekg(static_cast<std::streamoff>(t->offset));
        uint64_t left = t->nbytes;
        while (ok && left > 0) {
            const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
            in.read(buf.data(), static_cast<std::streamsize>(n));
            ok = in.good() && std::fwrite(buf.data(), 1, n, f) == n;
            left -= n;
            done += n;
            if (progress)
                progress(done, total);
        }
        const size_t pad = (align - t->nbytes % align) % align;
        static const char zeros[64] = {};
        ok = ok && std::fwrite(zeros, 1, pad, f) == pad;
    }
    ok = ok && std::fflush(f) == 0;
    guard.reset();
    if (!ok) {
        std::filesystem::remove(tmp);
        throw Error(ErrorCode::kResource, "writing shard " + out_path + " failed");
    }
    std::filesystem::rename(tmp, out_path);
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
