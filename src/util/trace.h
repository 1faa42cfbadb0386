// Where the time goes: a Chrome / Perfetto trace of every ubatch (`--trace
// FILE` on serve, join and run). Each process writes its own file in the
// Trace Event Format's JSON Array form (ref: "Trace Event Format", Google,
// docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):
//
//   [
//   {"name":"process_name","ph":"M","pid":P,"tid":0,"args":{"name":"coordinator"}},
//   {"name":"compute","cat":"stage","ph":"X","ts":T,"dur":D,"pid":P,"tid":K,"args":{...}},
//   ...
//
// The closing "]" is optional in that format, so a file cut short by a kill
// still opens in chrome://tracing and ui.perfetto.dev. ts and dur are
// microseconds of CLOCK_MONOTONIC (std::chrono::steady_clock on Linux), the
// same clock in every process of one machine, so the files of a `colony run`
// line up and merge_trace_files() can put them in one.
//
// With no trace open, a TraceSpan costs one atomic load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace colony {

/// Opens `path` (truncating) as this process's trace, named `process_name`
/// in the viewer. Throws Error(kResource) when the file cannot be written.
/// Replaces a trace that was open.
void trace_open(const std::string &path, const std::string &process_name);
/// Flushes and closes the trace (also at exit); no-op when none is open.
void trace_close();
/// Whether a trace is open (cheap: one atomic load).
bool trace_enabled();

/// Microseconds on the trace's clock (steady clock).
int64_t trace_now_us();

/// Records one complete event ("ph":"X") of this thread: `name` in category
/// `cat`, from t0_us for dur_us, with `args_json` (a JSON object's text, or
/// empty). Thread-safe; no-op when no trace is open.
void trace_event(const char *name, const char *cat, int64_t t0_us, int64_t dur_us,
                 const std::string &args_json = {});

/// Records a complete event on a named track of its own ("tid" from the
/// track's name) instead of the calling thread's, e.g. the time a request
/// waited in the queue.
void trace_event_on(const char *track, const char *name, const char *cat, int64_t t0_us,
                    int64_t dur_us, const std::string &args_json = {});

/// Times a scope: a complete event from construction to destruction. Set
/// args with set_args() before it ends.
class TraceSpan {
  public:
    TraceSpan(const char *name, const char *cat)
        : name_(name), cat_(cat), t0_(trace_enabled() ? trace_now_us() : -1) {}
    ~TraceSpan() {
        if (t0_ >= 0)
            trace_event(name_, cat_, t0_, trace_now_us() - t0_, args_);
    }
    TraceSpan(const TraceSpan &) = delete;
    TraceSpan &operator=(const TraceSpan &) = delete;
    /// Whether this span records (a trace was open when it started).
    bool active() const { return t0_ >= 0; }
    void set_args(std::string args_json) { args_ = std::move(args_json); }

  private:
    const char *name_;
    const char *cat_;
    int64_t t0_;
    std::string args_;
};

/// Writes the events of several trace files (each in the format above, cut
/// short or whole) into one file at `out`. Lines that are not events are
/// skipped. Throws Error(kResource) when `out` cannot be written.
void merge_trace_files(const std::vector<std::string> &inputs, const std::string &out);

}  // namespace colony
