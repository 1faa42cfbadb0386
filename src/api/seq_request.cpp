#include "api/seq_request.h"

#include <utility>

#include "pipeline/seq_samplers.h"
#include "runtime/tokenizer.h"

namespace colony {

namespace {

FinishReason finish_of(SeqOutcome::End end) {
    switch (end) {
        case SeqOutcome::End::kStop:
            return FinishReason::kStop;
        case SeqOutcome::End::kLength:
            return FinishReason::kLength;
        case SeqOutcome::End::kCancelled:
            return FinishReason::kCancelled;
        case SeqOutcome::End::kError:
            return FinishReason::kError;
    }
    return FinishReason::kError;
}

}  // namespace

GenerationResult generation_result_of(const SeqOutcome &o) {
    GenerationResult r;
    r.finish = finish_of(o.end);
    r.n_prompt = o.n_prompt;
    r.n_generated = o.n_generated;
    r.queue_us = o.queue_us;
    r.ttft_us = o.ttft_us;
    r.total_us = o.total_us;
    r.draft_n = o.spec.n_drafted;
    r.draft_n_accepted = o.spec.n_accepted;
    r.error_code = o.error_code;
    r.error_message = o.error_message;
    return r;
}

BackendModelInfo model_info_of(const std::string &path, const ModelHparams &hp, uint32_t n_ctx_seq,
                               const std::string &alias) {
    BackendModelInfo info;
    info.id = alias.empty() ? model_id_from_path(path) : alias;
    info.path = path;
    info.arch = hp.arch_name;
    info.n_layer = hp.n_layer;
    info.n_vocab = hp.n_vocab;
    info.n_ctx_seq = n_ctx_seq;
    info.created_unix = file_mtime_unix(path);
    return info;
}

std::unique_ptr<SeqRequest> make_seq_request(GenerationRequest request,
                                             GenerationCallbacks callbacks, const Tokenizer &tok) {
    auto req = std::make_unique<SeqRequest>();
    req->prompt = std::move(request.prompt);
    req->max_tokens = request.max_tokens;
    req->sampling = sampling_to_wire(request.sampling);
    // A random seed is drawn here, once: a replayed request (recovery) then
    // draws the same tokens on whichever stage samples it.
    req->sampling.seed = resolve_seed(req->sampling.seed);
    if (!request.options.empty()) {
        req->has_options = true;
        req->options = options_to_wire(request.options);
        req->options.n_prompt = static_cast<int32_t>(req->prompt.size());
    }
    req->share_prompt_of = request.share_prompt_of;
    req->ignore_eos = request.ignore_eos;
    req->is_eog = [t = &tok](int32_t token) { return t->is_eog(token); };
    req->on_token = std::move(callbacks.on_token);
    req->on_embedding = std::move(callbacks.on_embedding);
    req->on_done = [done = std::move(callbacks.on_done)](const SeqOutcome &o) {
        if (done)
            done(generation_result_of(o));
    };
    return req;
}

}  // namespace colony
