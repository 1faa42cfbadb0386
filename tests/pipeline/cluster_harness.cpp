#include "cluster_harness.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <cpp-httplib/httplib.h>

#include "pipeline/logits_dump.h"

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
    std::vector<std::string> argv = {
        colony_bin(), "serve", "-m", model, "--host", "127.0.0.1", "--port", "0", "--api-port", "0",
        "--workers-expected", std::to_string(workers_expected), "--config-dir",
        (dir_ / "config").string(), "--cache-dir", (dir_ / "cache").string(), "--ready-file",
        ready.string(), "-t", "1",
        // the layouts these tests check; the measured planner's
        // tests pass --planner measured (later options win)
        "--planner", "static"};
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

std::string http_get_text(uint16_t port, const std::string &path) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(10);
    const auto r = c.Get(path);
    return r ? r->body : std::string();
}

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

namespace {

// One SSE event's JSON into `out` (a text chunk, an error, the usage).
void take_event(const std::string &payload, StreamReply &out, bool &had_text) {
    if (payload == "[DONE]") {
        out.done = true;
        return;
    }
    const nlohmann::json ev = nlohmann::json::parse(payload, nullptr, false);
    if (!ev.is_object())
        return;
    if (ev.contains("error")) {
        out.error = ev["error"].dump();
        return;
    }
    if (ev.contains("usage") && ev["usage"].is_object())
        out.completion_tokens = ev["usage"].value("completion_tokens", int64_t{-1});
    if (!ev.contains("choices") || !ev["choices"].is_array() || ev["choices"].empty())
        return;
    const nlohmann::json &choice = ev["choices"][0];
    const std::string text = choice.value("text", "");
    if (!text.empty()) {
        out.text += text;
        had_text = true;
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
        out.finish_reason = choice["finish_reason"];
}

}  // namespace

StreamReply http_stream(uint16_t port, nlohmann::json body, int timeout_s,
                        const std::function<void(int)> &on_chunk) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    StreamReply out;
    std::string pending;
    auto last = std::chrono::steady_clock::now();
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(timeout_s);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char *data, size_t n, uint64_t, uint64_t) {
        pending.append(data, n);
        for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
            const std::string event = pending.substr(0, end);
            pending.erase(0, end + 2);
            if (event.rfind("data: ", 0) != 0)
                continue;
            bool had_text = false;
            take_event(event.substr(6), out, had_text);
            if (!had_text)
                continue;
            const auto now = std::chrono::steady_clock::now();
            if (out.n_chunks > 0) {
                out.max_gap_ms = std::max(
                    out.max_gap_ms, std::chrono::duration<double, std::milli>(now - last).count());
            }
            last = now;
            ++out.n_chunks;
            if (on_chunk)
                on_chunk(out.n_chunks);
        }
        return true;
    };
    const auto res = c.send(req);
    if (res)
        out.status = res->status;
    return out;
}

int worker_holding(uint16_t api_port, uint32_t first, size_t n_workers) {
    const HttpReply r = http_get(api_port, "/v1/cluster");
    for (const auto &n : r.body.value("nodes", nlohmann::json::array())) {
        if (n.value("role", "") != "worker" || !n["layers"].is_object() ||
            n["layers"].value("first", 0u) != first)
            continue;
        for (size_t i = 0; i < n_workers; ++i) {
            if (n.value("name", "") == "w" + std::to_string(i + 1))
                return static_cast<int>(i);
        }
    }
    return -1;
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

void flip_byte_keep_mtime(const std::filesystem::path &file, uint64_t offset) {
    struct stat before {};
    if (::stat(file.c_str(), &before) != 0)
        throw std::runtime_error("cannot stat " + file.string());
    {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        char c = 0;
        f.seekg(static_cast<std::streamoff>(offset));
        f.get(c);
        f.seekp(static_cast<std::streamoff>(offset));
        f.put(static_cast<char>(c + 1));
        f.flush();
        if (!f)
            throw std::runtime_error("cannot change " + file.string());
    }
    const struct timespec times[2] = {before.st_atim, before.st_mtim};
    if (::utimensat(AT_FDCWD, file.c_str(), times, 0) != 0)
        throw std::runtime_error("cannot restore the mtime of " + file.string());
}

namespace {

/// Fields of /proc/<pid>/stat after the command name: state, ppid, ...
std::vector<std::string> stat_fields(int pid) {
    const std::string s = read_text("/proc/" + std::to_string(pid) + "/stat");
    const size_t close = s.rfind(')');
    if (close == std::string::npos)
        return {};
    std::istringstream in(s.substr(close + 1));
    std::vector<std::string> out;
    for (std::string f; in >> f;)
        out.push_back(f);
    return out;
}

}  // namespace

std::vector<int> child_pids(int pid) {
    std::vector<int> out;
    std::error_code ec;
    for (const auto &e : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const auto f = stat_fields(std::stoi(name));
        if (f.size() > 1 && f[1] == std::to_string(pid))
            out.push_back(std::stoi(name));
    }
    return out;
}

bool process_gone(int pid) {
    const auto f = stat_fields(pid);
    return f.empty() || f[0] == "Z" || f[0] == "X";
}

std::vector<std::string> process_cmdline(int pid) {
    const std::string raw = read_text("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\0') {
            out.push_back(raw.substr(start, i - start));
            start = i + 1;
        }
    }
    // A program run through binfmt_misc with the P (preserve argv[0]) flag,
    // as Debian registers qemu-user for aarch64 (scripts/test-aarch64.sh),
    // shows as: interpreter, the program's path, then its own argv.
    if (out.size() >= 2 &&
        std::filesystem::path(out[0]).filename().string().find("binfmt-P") != std::string::npos)
        out.erase(out.begin(), out.begin() + 2);
    return out;
}

std::string arg_after(const std::vector<std::string> &args, const std::string &flag) {
    for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == flag)
            return args[i + 1];
    }
    return "";
}

RunProcess::RunProcess(const std::filesystem::path &dir, const std::string &model,
                       const std::vector<std::string> &args, const std::filesystem::path &tmpdir,
                       const std::vector<std::string> &env)
    : dir_(dir) {
    std::filesystem::create_directories(dir_);
    std::filesystem::create_directories(tmpdir);
    std::vector<std::string> argv = {"/usr/bin/env", "TMPDIR=" + tmpdir.string()};
    argv.insert(argv.end(), env.begin(), env.end());
    for (const std::string &a : {colony_bin(), std::string("run"), std::string("-m"), model})
        argv.push_back(a);
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = std::make_unique<ChildProcess>(argv, (dir_ / "run.out").string(),
                                           (dir_ / "run.err").string());
    const std::regex listening("listening on (https?://127\\.0\\.0\\.1:([0-9]+))/");
    std::smatch m;
    std::string out;
    const bool ok = eventually(
        [&] {
            out = read_text(dir_ / "run.out");
            return std::regex_search(out, m, listening) || !proc_->running();
        },
        120000);
    if (!ok || m.empty())
        throw std::runtime_error("colony run did not start serving: " + output());
    url_ = m[1];
    port_ = static_cast<uint16_t>(std::stoi(m[2]));
}

}  // namespace colony::test

namespace colony::test {

std::vector<DumpedSequence> dumped_sequences(const std::string &path) {
    std::vector<DumpedSequence> out;
    std::map<int32_t, size_t> open;  // seq_id -> index in out of its latest sequence
    for (LogitsRecord &r : read_logits_dump(path)) {
        if (!r.logits.empty()) {
            DumpedSequence s;
            s.seq_id = r.seq_id;
            s.first_pos = r.pos;
            s.logits = std::move(r.logits);
            s.tokens.push_back(r.token);
            open[r.seq_id] = out.size();
            out.push_back(std::move(s));
            continue;
        }
        const auto it = open.find(r.seq_id);
        if (it == open.end()) {
            throw std::runtime_error(path + ": a token of sequence " + std::to_string(r.seq_id) +
                                     " before its first (logits) record");
        }
        out[it->second].tokens.push_back(r.token);
    }
    return out;
}

void synth_model(const std::string &out, const std::string &preset,
                 const std::vector<std::string> &extra) {
    std::vector<std::string> args = {"synth", "--preset", preset, "-o", out, "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    int rc = -1;
    std::string err;
    run_colony(args, &rc, &err, 300000);
    if (rc != 0)
        throw std::runtime_error("colony synth --preset " + preset + " failed (" +
                                 std::to_string(rc) + "): " + err);
}

}  // namespace colony::test
