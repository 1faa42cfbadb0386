#include "api/openai/job_stream.h"

#include <chrono>

#include "util/log.h"

namespace colony {

namespace {

constexpr std::chrono::milliseconds kPollInterval{100};  // how often a stream checks its job

struct StreamState {
    std::shared_ptr<GenerationJob> job;
    JobStreamFormat format;
    std::string log_id;
    bool started = false;
    bool finished = false;
};

bool write(httplib::DataSink &sink, const std::string &bytes) {
    return bytes.empty() || sink.write(bytes.data(), bytes.size());
}

/// One call of the chunked content provider. false: the client is gone.
bool provide(StreamState &st, httplib::DataSink &sink) {
    GenerationJob &job = *st.job;
    if (!st.started) {
        st.started = true;
        if (st.format.start && !write(sink, st.format.start()))
            return false;
    }
    for (const ChoiceUpdate &u : job.next(kPollInterval)) {
        if (u.error) {
            st.finished = true;
            job.abandon();
            if (!write(sink, st.format.error(*u.error)))
                return false;
            sink.done();
            return true;
        }
        if (!write(sink, st.format.update(u)))
            return false;
    }
    if (!job.finished())
        return true;
    st.finished = true;
    if (st.format.end && !write(sink, st.format.end(job)))
        return false;
    sink.done();
    return true;
}

}  // namespace

void stream_job(httplib::Response &res, std::shared_ptr<GenerationJob> job, JobStreamFormat format,
                const std::string &log_id) {
    auto st = std::make_shared<StreamState>();
    st->job = std::move(job);
    st->format = std::move(format);
    st->log_id = log_id;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        st->format.content_type,
        [st](size_t, httplib::DataSink &sink) { return provide(*st, sink); },
        [st](bool) {
            if (!st->finished) {
                COLONY_LOG_DEBUG("api: client of %s went away; cancelling", st->log_id.c_str());
                st->job->abandon();
            }
        });
}

bool wait_job(GenerationJob &job, const httplib::Request &req, httplib::Response &res,
              const std::string &log_id) {
    const bool complete =
        job.wait_all([&req] { return req.is_connection_closed && req.is_connection_closed(); });
    if (!complete) {
        COLONY_LOG_DEBUG("api: client of %s went away; cancelling", log_id.c_str());
        res.status = 499;  // nginx's "client closed request"; never reaches anyone
    }
    return complete;
}

}  // namespace colony
