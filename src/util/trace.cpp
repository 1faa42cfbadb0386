#include "util/trace.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "util/error.h"

namespace colony {

namespace {

/// The open trace file. Events are one line each, written under the mutex.
struct TraceFile {
    std::mutex mutex;
    std::FILE *file = nullptr;  // guarded by mutex
    int pid = 0;
    /// At exit: the trace ends with a last line and "]" (close_locked).
    ~TraceFile();
    void close_locked();
};

std::atomic<bool> g_enabled{false};
TraceFile &trace_file() {
    static TraceFile t;
    return t;
}

/// JSON string body of `s` (quotes and control characters escaped).
std::string json_escape(const std::string &s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

uint64_t thread_track() {
    return std::hash<std::thread::id>{}(std::this_thread::get_id()) % 1000000;
}

void write_line(const std::string &line) {
    TraceFile &t = trace_file();
    std::lock_guard<std::mutex> lock(t.mutex);
    if (!t.file)
        return;
    std::fputs(line.c_str(), t.file);
    std::fflush(t.file);  // a killed process keeps what it wrote
}

std::string event_line(const char *name, const char *cat, int64_t t0_us, int64_t dur_us,
                       uint64_t tid, const std::string &args_json) {
    std::string line = "{\"name\":\"" + json_escape(name) + "\",\"cat\":\"" + json_escape(cat) +
                       "\",\"ph\":\"X\",\"ts\":" + std::to_string(t0_us) +
                       ",\"dur\":" + std::to_string(dur_us < 0 ? 0 : dur_us) +
                       ",\"pid\":" + std::to_string(trace_file().pid) +
                       ",\"tid\":" + std::to_string(tid);
    if (!args_json.empty())
        line += ",\"args\":" + args_json;
    return line + "},\n";
}

void TraceFile::close_locked() {
    if (!file)
        return;
    // A last metadata event, so the array ends without a trailing comma.
    std::fprintf(
        file, "{\"name\":\"trace_end\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{}}\n]\n", pid);
    std::fclose(file);
    file = nullptr;
}

TraceFile::~TraceFile() {
    g_enabled.store(false);
    std::lock_guard<std::mutex> lock(mutex);
    close_locked();
}

}  // namespace

void trace_open(const std::string &path, const std::string &process_name) {
    trace_close();
    std::FILE *f = std::fopen(path.c_str(), "w");
    if (!f)
        throw Error(ErrorCode::kResource, "cannot write the trace file " + path);
    TraceFile &t = trace_file();
    {
        std::lock_guard<std::mutex> lock(t.mutex);
        t.file = f;
        t.pid = static_cast<int>(::getpid());
        std::fprintf(f,
                     "[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
                     "\"args\":{\"name\":\"%s\"}},\n",
                     t.pid, json_escape(process_name).c_str());
    }
    g_enabled.store(true);
}

void trace_close() {
    g_enabled.store(false);
    TraceFile &t = trace_file();
    std::lock_guard<std::mutex> lock(t.mutex);
    t.close_locked();
}

bool trace_enabled() {
    return g_enabled.load(std::memory_order_relaxed);
}

int64_t trace_now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void trace_event(const char *name, const char *cat, int64_t t0_us, int64_t dur_us,
                 const std::string &args_json) {
    if (!trace_enabled())
        return;
    write_line(event_line(name, cat, t0_us, dur_us, thread_track(), args_json));
}

void trace_event_on(const char *track, const char *name, const char *cat, int64_t t0_us,
                    int64_t dur_us, const std::string &args_json) {
    if (!trace_enabled())
        return;
    const uint64_t tid = 1000000 + std::hash<std::string>{}(track) % 1000000;
    write_line(event_line(name, cat, t0_us, dur_us, tid, args_json));
}

void merge_trace_files(const std::vector<std::string> &inputs, const std::string &out) {
    std::ofstream o(out, std::ios::trunc);
    if (!o)
        throw Error(ErrorCode::kResource, "cannot write the trace file " + out);
    o << "[\n";
    bool first = true;
    for (const std::string &in : inputs) {
        std::ifstream f(in);
        std::string line;
        while (std::getline(f, line)) {
            if (line.size() < 2 || line.front() != '{')
                continue;  // "[", "]"
            while (!line.empty() && (line.back() == ',' || line.back() == '\r'))
                line.pop_back();
            if (line.back() != '}')
                continue;  // a line cut short by a kill
            o << (first ? "" : ",\n") << line;
            first = false;
        }
    }
    o << "\n]\n";
    if (!o)
        throw Error(ErrorCode::kResource, "cannot write the trace file " + out);
}

}  // namespace colony
