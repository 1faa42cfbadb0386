#include "api/serve_local.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"

namespace colony {

void write_ready_file(const std::string &path, const std::string &json) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << json << "\n";
        if (!out)
            throw Error(ErrorCode::kResource, "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(ErrorCode::kResource, "cannot write " + path);
}

int serve_local(const LocalBackendOptions &bo, const OpenAiServerOptions &so,
                const std::string &ready_file) {
    block_stop_signals();      // before the backend and the server start their threads
    LocalBackend backend(bo);  // loads the weights on its own thread
    OpenAiServer server(backend, backend.tokenizer(), so);
    std::printf("colony: listening on %s://%s:%u/\n", server.tls() ? "https" : "http",
                so.host.c_str(), server.port());
    std::fflush(stdout);
    if (!ready_file.empty()) {
        write_ready_file(
            ready_file,
            nlohmann::json{{"api_port", server.port()}, {"control_port", 0}, {"token", ""}}.dump());
    }
    backend.wait_ready();
    std::printf("colony: model %s ready\n", backend.model_info().id.c_str());
    std::fflush(stdout);
    int sig = 0;
    while (sig == 0)
        sig = wait_stop_signal(1000);
    COLONY_LOG_INFO("serve: signal %d, shutting down", sig);
    return 0;
}

}  // namespace colony
