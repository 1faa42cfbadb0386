#include "api_test_support.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

#include <cpp-httplib/httplib.h>

#include "model/synth.h"

namespace colony::apitest {

std::string stories_path() {
    return test::model_path("stories260K-f32.gguf");
}

std::vector<nlohmann::json> sixteen_stream_requests(int max_tokens) {
    const char *starts[] = {"Once upon a time", "The little dog", "Lily and Tom went",
                            "One day, a bird",  "The sun was",    "Mom said",
                            "There was a big",  "Tim liked to"};
    std::vector<nlohmann::json> reqs;
    for (int i = 0; i < 16; ++i) {
        std::string prompt = starts[i % 8];
        if (i >= 8)
            prompt += " and then";
        reqs.push_back(
            {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}});
    }
    return reqs;
}

std::string StreamedCompletion::describe() const {
    return "HTTP " + std::to_string(status) + ", finish '" + finish_reason + "', error '" + error +
           "': " + body.substr(0, 2000);
}

StreamedCompletion stream_completion(uint16_t port, const nlohmann::json &req, int read_timeout_s) {
    StreamedCompletion out;
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(read_timeout_s, 0);
    const auto res = c.Post("/v1/completions", req.dump(), "application/json");
    if (!res) {
        out.body = "no answer: " + httplib::to_string(res.error());
        return out;
    }
    out.status = res->status;
    out.body = res->body;
    if (res->status != 200)
        return out;
    for (const std::string &p : sse_payloads(res->body)) {
        if (p == "[DONE]")
            break;
        const nlohmann::json ev = nlohmann::json::parse(p, nullptr, false);
        if (ev.is_object() && ev.contains("error")) {
            out.error = ev["error"].dump();
            continue;
        }
        if (!ev.is_object() || !ev.contains("choices") || ev["choices"].empty())
            continue;
        const nlohmann::json &choice = ev["choices"][0];
        out.text += choice.value("text", "");
        if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
            out.finish_reason = choice["finish_reason"];
    }
    return out;
}

std::string tiny_qwen2_path(const std::string &dir) {
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    const std::string path = dir + "/tiny-qwen2-chatml.gguf";
    if (std::filesystem::exists(path))
        return path;
    SynthOverrides ov;
    ov.n_layer = 2;
    ov.n_embd = 64;
    ov.n_head = 2;
    ov.n_head_kv = 1;
    ov.head_dim = 32;
    ov.n_ff = 128;
    ov.n_ctx_train = 2048;
    SynthOptions o;
    o.hparams = synth_apply_overrides(synth_find_preset("qwen2.5-0.5b"), ov);
    o.ftype = synth_find_ftype("F16");
    o.seed = 7;
    o.n_threads = 2;
    o.out_path = path;
    synth_write_gguf(o);
    return path;
}

LocalBackendOptions backend_options(const std::string &model, uint32_t n_parallel, uint32_t n_ctx) {
    LocalBackendOptions o;
    o.model_path = model;
    o.n_parallel = n_parallel;
    o.n_ctx = n_ctx;
    o.n_ubatch = 64;
    o.n_threads = 2;
    o.max_queue = 32;
    return o;
}

uint64_t SlowBackend::submit(GenerationRequest request, GenerationCallbacks callbacks) {
    auto delay = delay_;
    auto on_token = std::move(callbacks.on_token);
    callbacks.on_token = [delay, on_token](const SampledToken &t) {
        std::this_thread::sleep_for(delay);
        on_token(t);
    };
    return inner_.submit(std::move(request), std::move(callbacks));
}

uint64_t NotReadyBackend::submit(GenerationRequest, GenerationCallbacks) {
    throw Error(ErrorCode::kUnavailable, "not ready: " + reason_);
}

std::vector<std::string> sse_payloads(const std::string &body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < body.size()) {
        if (body.compare(pos, 6, "data: ") != 0) {
            ADD_FAILURE() << "SSE event does not start with 'data: ' at byte " << pos << ": "
                          << body.substr(pos, 40);
            return out;
        }
        const size_t end = body.find("\n\n", pos);
        if (end == std::string::npos) {
            ADD_FAILURE() << "SSE event not terminated by a blank line: " << body.substr(pos, 60);
            return out;
        }
        const std::string payload = body.substr(pos + 6, end - pos - 6);
        if (payload.find('\n') != std::string::npos)
            ADD_FAILURE() << "SSE payload spans lines: " << payload;
        out.push_back(payload);
        pos = end + 2;
    }
    return out;
}

namespace {

void split_response(const std::string &data, RawResponse &r) {
    const size_t header_end = data.find("\r\n\r\n");
    if (header_end == std::string::npos)
        return;
    r.headers = data.substr(0, header_end);
    r.body = data.substr(header_end + 4);
    if (r.headers.rfind("HTTP/1.1 ", 0) == 0)
        r.status = std::stoi(r.headers.substr(9, 3));
}

}  // namespace

RawResponse raw_http(uint16_t port, const std::string &request,
                     const std::function<bool(const RawResponse &)> &hang_up,
                     std::chrono::milliseconds timeout) {
    RawResponse r;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return r;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return r;
    }
    size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += static_cast<size_t>(n);
    }
    std::string data;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        split_response(data, r);
        if (hang_up && hang_up(r))
            break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        data.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    split_response(data, r);
    return r;
}

std::string raw_post(const std::string &path, const std::string &json,
                     const std::string &extra_headers) {
    std::ostringstream s;
    s << "POST " << path << " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      << extra_headers << "Content-Length: " << json.size() << "\r\nConnection: close\r\n\r\n"
      << json;
    return s.str();
}

double metric_value(const std::string &text, const std::string &metric, const std::string &labels) {
    const std::string key = labels.empty() ? metric + " " : metric + "{" + labels + "} ";
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0)
            return std::stod(line.substr(key.size()));
    }
    return -1;
}

}  // namespace colony::apitest
