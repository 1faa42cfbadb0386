#include "api/openai/metrics.h"

#include <cstdio>

namespace colony {

namespace {

const char *const kEndpoints[] = {"/v1/chat/completions",
                                  "/v1/completions",
                                  "/v1/models",
                                  "/v1/cluster",
                                  "/health",
                                  "/metrics",
                                  "/"};

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.15g", v);
    return buf;
}

void header(std::string &out, const char *name, const char *type, const char *help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string &out, const std::string &name, const std::string &labels, double value) {
    out += name;
    if (!labels.empty())
        out += "{" + labels + "}";
    out += ' ';
    out += num(value);
    out += '\n';
}

std::string stage_labels(const StageStats &s) {
    return "stage=\"" + std::to_string(s.index) + "\",node=\"" + prometheus_escape(s.node_id) +
           "\",layers=\"" + std::to_string(s.layers.first) + "-" + std::to_string(s.layers.last) +
           "\"";
}

}  // namespace

std::string prometheus_escape(const std::string &value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i])
        ++i;
    ++counts_[i];
    sum_ += value;
    ++count_;
}

void Histogram::render(const std::string &name, std::string &out) const {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cumulative += counts_[i];
        sample(out, name + "_bucket", "le=\"" + num(bounds_[i]) + "\"",
               static_cast<double>(cumulative));
    }
    sample(out, name + "_bucket", "le=\"+Inf\"", static_cast<double>(count_));
    sample(out, name + "_sum", "", sum_);
    sample(out, name + "_count", "", static_cast<double>(count_));
}

ApiMetrics::ApiMetrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
      duration_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void ApiMetrics::count_request(const std::string &path, int status) {
    std::string endpoint = "other";
    for (const char *e : kEndpoints) {
        if (path == e)
            endpoint = e;
    }
    if (path.rfind("/v1/models/", 0) == 0)
        endpoint = "/v1/models/{id}";
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{endpoint, status}];
}

void ApiMetrics::add_tokens(int32_t prompt_tokens, int32_t generated_tokens) {
    std::lock_guard<std::mutex> lock(mutex_);
    prompt_tokens_ += static_cast<uint64_t>(prompt_tokens > 0 ? prompt_tokens : 0);
    generated_tokens_ += static_cast<uint64_t>(generated_tokens > 0 ? generated_tokens : 0);
}

void ApiMetrics::add_drafts(int64_t drafted, int64_t accepted) {
    std::lock_guard<std::mutex> lock(mutex_);
    drafted_ += static_cast<uint64_t>(drafted > 0 ? drafted : 0);
    accepted_ += static_cast<uint64_t>(accepted > 0 ? accepted : 0);
}

void ApiMetrics::observe_ttft(double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ttft_.observe(seconds);
}

void ApiMetrics::observe_tpot(double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    tpot_.observe(seconds);
}

void ApiMetrics::observe_duration(double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    duration_.observe(seconds);
}

void ApiMetrics::count_client_disconnect() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++disconnects_;
}

uint64_t ApiMetrics::requests(const std::string &endpoint, int status) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = requests_.find({endpoint, status});
    return it == requests_.end() ? 0 : it->second;
}

std::string ApiMetrics::render(const BackendStats &stats, const BackendHealth &health) const {
    std::string out;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        header(out, "colony_http_requests_total", "counter",
               "HTTP requests by endpoint and status code.");
        for (const auto &[key, n] : requests_) {
            sample(out, "colony_http_requests_total",
                   "endpoint=\"" + prometheus_escape(key.first) + "\",status=\"" +
                       std::to_string(key.second) + "\"",
                   static_cast<double>(n));
        }
        header(out, "colony_prompt_tokens_total", "counter",
               "Prompt tokens of generation requests.");
        sample(out, "colony_prompt_tokens_total", "", static_cast<double>(prompt_tokens_));
        header(out, "colony_generated_tokens_total", "counter", "Tokens generated for clients.");
        sample(out, "colony_generated_tokens_total", "", static_cast<double>(generated_tokens_));
        header(out, "colony_draft_tokens_total", "counter",
               "Speculative decoding: draft tokens verified by the target model.");
        sample(out, "colony_draft_tokens_total", "", static_cast<double>(drafted_));
        header(out, "colony_draft_tokens_accepted_total", "counter",
               "Speculative decoding: draft tokens the target model accepted.");
        sample(out, "colony_draft_tokens_accepted_total", "", static_cast<double>(accepted_));
        header(out, "colony_client_disconnects_total", "counter",
               "Generations cancelled because the client disconnected.");
        sample(out, "colony_client_disconnects_total", "", static_cast<double>(disconnects_));
        header(out, "colony_time_to_first_token_seconds", "histogram",
               "Time from receiving a request to its first generated token.");
        ttft_.render("colony_time_to_first_token_seconds", out);
        header(out, "colony_time_per_output_token_seconds", "histogram",
               "Time between consecutive generated tokens of a request.");
        tpot_.render("colony_time_per_output_token_seconds", out);
        header(out, "colony_request_duration_seconds", "histogram",
               "Duration of generation requests.");
        duration_.render("colony_request_duration_seconds", out);
    }
    header(out, "colony_backend_ready", "gauge", "1 when the backend accepts requests.");
    sample(out, "colony_backend_ready", "status=\"" + prometheus_escape(health.status) + "\"",
           health.ready ? 1 : 0);
    header(out, "colony_requests_running", "gauge", "Requests holding a sequence slot.");
    sample(out, "colony_requests_running", "", static_cast<double>(stats.n_running));
    header(out, "colony_requests_queued", "gauge",
           "Requests waiting for a sequence slot (queue depth).");
    sample(out, "colony_requests_queued", "", static_cast<double>(stats.n_queued));
    header(out, "colony_sequence_slots", "gauge", "Sequence slots (parallel sequences).");
    sample(out, "colony_sequence_slots", "", stats.n_parallel);
    header(out, "colony_queue_capacity", "gauge",
           "Requests the queue holds before refusing with 429.");
    sample(out, "colony_queue_capacity", "", static_cast<double>(stats.max_queue));

    header(out, "colony_recoveries_total", "counter",
           "Lost stages the pipeline recovered from (or tried to), by outcome.");
    sample(out, "colony_recoveries_total", "outcome=\"recovered\"",
           static_cast<double>(stats.recovery.recoveries - stats.recovery.failed));
    sample(out, "colony_recoveries_total", "outcome=\"failed\"",
           static_cast<double>(stats.recovery.failed));
    header(out, "colony_requests_replayed_total", "counter",
           "Running requests replayed from their token history after a lost stage.");
    sample(out, "colony_requests_replayed_total", "",
           static_cast<double>(stats.recovery.requests_replayed));
    header(out, "colony_recovery_tokens_recomputed_total", "counter",
           "Positions prefilled again to rebuild the KV caches after a lost stage.");
    sample(out, "colony_recovery_tokens_recomputed_total", "",
           static_cast<double>(stats.recovery.tokens_recomputed));
    header(out, "colony_prompt_tokens_shared_total", "counter",
           "Prompt positions copied between the choices of one request instead of prefilled.");
    sample(out, "colony_prompt_tokens_shared_total", "",
           static_cast<double>(stats.prompt_tokens_shared));

    header(out, "colony_messages_dropped_total", "counter",
           "Control and data messages a node dropped as stale (plan epoch), replayed "
           "(session sequence) or of no running request.");
    for (const MessageDropStats &d : stats.messages_dropped) {
        sample(out, "colony_messages_dropped_total",
               "node=\"" + prometheus_escape(d.node_id) + "\",reason=\"" +
                   prometheus_escape(d.reason) + "\"",
               static_cast<double>(d.count));
    }

    auto per_stage = [&](const char *name, const char *type, const char *help,
                         double (*value)(const StageStats &)) {
        header(out, name, type, help);
        for (const StageStats &s : stats.stages)
            sample(out, name, stage_labels(s), value(s));
    };
    per_stage("colony_stage_compute_seconds_total", "counter",
              "Forward-pass compute time per pipeline stage.",
              [](const StageStats &s) { return s.compute_seconds; });
    per_stage("colony_stage_ubatches_total", "counter",
              "Forward passes (ubatches) per pipeline stage.",
              [](const StageStats &s) { return static_cast<double>(s.n_ubatches); });
    per_stage("colony_stage_hop_seconds_total", "counter",
              "Time hidden states spent travelling from a stage to the next.",
              [](const StageStats &s) { return s.hop_seconds; });
    per_stage("colony_stage_hops_total", "counter",
              "Hidden-state transfers from a stage to the next.",
              [](const StageStats &s) { return static_cast<double>(s.n_hops); });
    per_stage("colony_kv_cache_used_cells", "gauge", "KV cache cells in use per stage (node).",
              [](const StageStats &s) { return static_cast<double>(s.kv_used_cells); });
    per_stage("colony_kv_cache_size_cells", "gauge", "KV cache cells per stage (node).",
              [](const StageStats &s) { return static_cast<double>(s.kv_size_cells); });
    per_stage("colony_kv_cache_usage_ratio", "gauge",
              "Fraction of KV cache cells in use per stage (node).", [](const StageStats &s) {
                  return s.kv_size_cells ? static_cast<double>(s.kv_used_cells) / s.kv_size_cells
                                         : 0.0;
              });
    return out;
}

}  // namespace colony
