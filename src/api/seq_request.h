// The API's requests (inference_backend.h: GenerationRequest, callbacks,
// GenerationResult) in the batch scheduler's terms (batch_scheduler.h:
// SeqRequest, SeqOutcome), for both backends that run on it: LocalBackend (a
// cluster of one) and CoordinatorBackend (a cluster with workers).
#pragma once

#include <memory>

#include "api/openai/inference_backend.h"
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

}  // namespace colony
