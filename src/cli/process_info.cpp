#include "cli/process_info.h"

#include <string>

#include "ggml.h"
#include "llama.h"
#include "util/log.h"

namespace colony {

namespace {

void library_log(ggml_log_level level, const char *text, void *) {
    // libllama and ggml log line fragments; continuation lines carry no level
    static thread_local std::string line;
    static thread_local ggml_log_level line_level = GGML_LOG_LEVEL_DEBUG;
    if (level != GGML_LOG_LEVEL_CONT) line_level = level;
    line += text;
    if (line.empty() || line.back() != '\n') return;
    line.pop_back();
    const LogLevel ours = line_level == GGML_LOG_LEVEL_ERROR  ? LogLevel::kError
                          : line_level == GGML_LOG_LEVEL_WARN ? LogLevel::kDebug  // e.g. vocab quirks; COLONY_LOG=debug shows them
                                                              : LogLevel::kDebug;
    log_printf(ours, "[ggml] %s", line.c_str());
    line.clear();
}

}  // namespace

void install_library_logging() {
    ggml_log_set(library_log, nullptr);
    llama_log_set(library_log, nullptr);
}

}  // namespace colony
