// Serving a GenerationJob over HTTP, whatever the endpoint's format: waiting
// for the whole answer (with the client's disconnect cancelling it), or a
// chunked stream (SSE or NDJSON) whose events the endpoint formats through
// hooks. The stream polls the job every kPollInterval on cpp-httplib's
// worker thread and cancels the job when the client goes away.
#pragma once

#include <cpp-httplib/httplib.h>

#include <functional>
#include <memory>
#include <string>

#include "api/openai/generation_job.h"

namespace colony {

/// How an endpoint formats its stream. Every hook returns the bytes to send
/// (possibly empty).
struct JobStreamFormat {
    const char *content_type = "text/event-stream";
    std::function<std::string()> start;                       // once, first
    std::function<std::string(const ChoiceUpdate &)> update;  // per update
    std::function<std::string(const GenerationJob &)> end;    // once, all done
    std::function<std::string(const HttpError &)> error;      // a choice failed
};

/// Streams `job` into `res` with `format`; `log_id` names the response in logs.
void stream_job(httplib::Response &res, std::shared_ptr<GenerationJob> job, JobStreamFormat format,
                const std::string &log_id);

/// Waits for every choice of `job`. false: the client went away (the job is
/// cancelled and res gets 499) — nothing more to send.
bool wait_job(GenerationJob &job, const httplib::Request &req, httplib::Response &res,
              const std::string &log_id);

}  // namespace colony
