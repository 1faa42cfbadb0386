// The API's requests (inference_backend.h: GenerationRequest, callbacks,
// GenerationResult) in the batch scheduler's terms (batch_scheduler.h:
// SeqRequest, SeqOutcome), for both backends that run on it: LocalBackend (a
// cluster of one) and CoordinatorBackend (a cluster with workers).
#pragma once

#include <memory>
#include <string>

#include "api/openai/inference_backend.h"
#include "model/hparams.h"
#include "pipeline/batch_scheduler.h"

namespace colony {

class Tokenizer;

/// The scheduler's request for `request`: the same prompt, limits and
/// sampling; end-of-generation tokens as `tok` tells them (tok must outlive
/// the request); on_done gets the GenerationResult of the SeqOutcome.
std::unique_ptr<SeqRequest> make_seq_request(GenerationRequest request,
                                             GenerationCallbacks callbacks, const Tokenizer &tok);

/// The API's view of how a sequence ended (same counts and times).
GenerationResult generation_result_of(const SeqOutcome &outcome);

/// What the API says about the model of `path` (hp read from it), served
/// with n_ctx_seq positions per sequence under the name `alias` (empty: the
/// file name without ".gguf").
BackendModelInfo model_info_of(const std::string &path, const ModelHparams &hp, uint32_t n_ctx_seq,
                               const std::string &alias);

}  // namespace colony
