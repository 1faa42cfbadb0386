#include "cluster_harness.h"

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include <cpp-httplib/httplib.h>

namespace colony::test {

std::string colony_bin() {
    return COLONY_TEST_BIN;
}

std::string read_text(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string run_colony(const std::vector<std::string> &args, int *rc, std::string *stderr_text,
                       int timeout_ms) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "colony-cmd-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp failed");
    const std::filesystem::path dir = tmpl;
    std::vector<std::string> argv = {colony_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    int code = -1;
    {
        ChildProcess p(argv, (dir / "out").string(), (dir / "err").string());
        if (!p.wait(timeout_ms))
            p.stop(1000);
        code = p.exit_code();
    }
    const std::string out = read_text(dir / "out");
    if (stderr_text)
        *stderr_text = read_text(dir / "err");
    if (rc)
        *rc = code;
    std::filesystem::remove_all(dir);
    return out;
}

std::string reference_greedy(const std::string &model, const std::string &prompt, int n) {
    int rc = 0;
    const std::string out = run_colony(
        {"generate", "-m", model, "-p", prompt, "-n", std::to_string(n), "--temp", "0", "-t", "1"},
        &rc);
    if (rc != 0)
        throw std::runtime_error("colony generate failed");
    return out;
}

ServeProcess::ServeProcess(const std::filesystem::path &dir, const std::string &model,
                           int workers_expected, const std::vector<std::string> &extra,
                           const std::vector<std::string> &prefix)
    : dir_(dir) {
    std::filesystem::create_directories(dir_);
    const std::filesystem::path ready = dir_ / "ready.json";
    std::filesystem::remove(ready);
    std::vector<std::string> argv = {colony_bin(),
                                     "serve",
                                     "-m",
                                     model,
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--api-port",
                                     "0",
                                     "--workers-expected",
                                     std::to_string(workers_expected),
                                     "--config-dir",
                                     (dir_ / "config").string(),
                                     "--cache-dir",
                                     (dir_ / "cache").string(),
                                     "--ready-file",
                                     ready.string(),
                                     "-t",
                                     "1",
                                     // the layouts these tests check; the measured planner's
                                     // tests pass --planner measured (later options win)
                                     "--planner",
                                     "static"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
    proc_ = std::make_unique<ChildProcess>(argv, (dir_ / "serve.out").string(),
                                           (dir_ / "serve.log").string());
    nlohmann::json info;
    const bool ok = eventually(
        [&] {
            info = nlohmann::json::parse(read_text(ready), nullptr, false);
            return info.is_object() || !proc_->running();
        },
        30000);
    if (!ok || !info.is_object()) {
        throw std::runtime_error("colony serve did not start: " + log());
    }
    control_port_ = info["control_port"];
    api_port_ = info["api_port"];
    token_ = info["token"];
    data_endpoint_ = info["data_endpoint"];
}

JoinProcess::JoinProcess(const std::filesystem::path &dir, const std::string &coordinator,
                         const std::string &token, const std::vector<std::string> &extra,
                         const std::vector<std::string> &prefix)
    : dir_(dir) {
    std::filesystem::create_directories(dir_);
    std::filesystem::remove(dir_ / "join.log");  // a restarted worker logs afresh
    std::vector<std::string> argv = {colony_bin(),
                                     "join",
                                     "--coordinator",
                                     coordinator,
                                     "--config-dir",
                                     (dir_ / "config").string(),
                                     "--cache-dir",
                                     (dir_ / "cache").string(),
                                     "--data-host",
                                     "127.0.0.1",
                                     "-t",
                                     "1",
                                     "--name",
                                     dir_.filename().string()};
    if (!token.empty()) {
        argv.push_back("--token");
        argv.push_back(token);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
    proc_ = std::make_unique<ChildProcess>(argv, "", (dir_ / "join.log").string());
}

namespace {

HttpReply reply_of(const httplib::Result &res) {
    HttpReply r;
    if (!res)
        return r;
    r.status = res->status;
    r.body = nlohmann::json::parse(res->body, nullptr, false);
    return r;
}

}  // namespace

HttpReply http_get(uint16_t port, const std::string &path) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(10);
    return reply_of(c.Get(path));
}

HttpReply http_post(uint16_t port, const std::string &path, const nlohmann::json &body,
                    int timeout_s) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(timeout_s);
    return reply_of(c.Post(path, body.dump(), "application/json"));
}

bool wait_health(uint16_t port, const std::string &status, int timeout_ms) {
    return eventually(
        [&] {
            const HttpReply r = http_get(port, "/health");
            return r.status != 0 && r.body.is_object() && r.body.value("status", "") == status;
        },
        timeout_ms);
}

int64_t coordinator_kv_used_cells(uint16_t api_port) {
    const HttpReply r = http_get(api_port, "/v1/cluster");
    if (r.status != 200 || !r.body.is_object())
        return -1;
    for (const auto &n : r.body.value("nodes", nlohmann::json::array())) {
        if (n.value("role", "") == "coordinator" && n.contains("kv"))
            return n["kv"].value("used_cells", int64_t{-1});
    }
    return -1;
}

bool wait_coordinator_kv_cells(uint16_t api_port, int64_t n_cells, int timeout_ms) {
    return eventually([&] { return coordinator_kv_used_cells(api_port) >= n_cells; }, timeout_ms);
}

std::string complete_greedy(uint16_t port, const std::string &prompt, int n) {
    const HttpReply r = http_post(port, "/v1/completions",
                                  {{"prompt", prompt}, {"max_tokens", n}, {"temperature", 0}});
    if (r.status != 200) {
        throw std::runtime_error("completion failed: HTTP " + std::to_string(r.status) + " " +
                                 r.body.dump());
    }
    return r.body["choices"][0]["text"];
}

}  // namespace colony::test
