// colony-cluster-demo: a test double for the dashboard's multi-node view.
// Generation runs on a LocalBackend (stories260K), but /v1/cluster and
// /metrics describe three nodes that split the layers the way a pipeline
// coordinator reports them: this machine, a phone (battery, temperature,
// link round trip) and a board still loading its shard. Used by
// dashboard.test.mjs to check that every node and its layer range is drawn.
//   colony-cluster-demo MODEL   (prints "colony: listening on URL/" like colony serve)
#include <signal.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "api/local_backend.h"
#include "api/openai/openai_server.h"
#include "llama.h"

namespace {

using nlohmann::json;

class ThreeNodeView : public colony::InferenceBackend {
  public:
    explicit ThreeNodeView(colony::LocalBackend &b) : b_(b) {}
    uint64_t submit(colony::GenerationRequest r, colony::GenerationCallbacks cb) override {
        return b_.submit(std::move(r), std::move(cb));
    }
    void cancel(uint64_t id) override { b_.cancel(id); }
    colony::BackendHealth health() const override { return b_.health(); }
    colony::BackendModelInfo model_info() const override { return b_.model_info(); }

    colony::BackendStats stats() const override {
        colony::BackendStats s = b_.stats();
        const colony::StageStats local = s.stages.at(0);
        s.stages.clear();
        const uint32_t n = model_info().n_layer;
        const char *nodes[] = {"local", "pixel-7", "raspberrypi"};
        const uint32_t cut[] = {0, n * 2 / 5, n * 4 / 5, n};
        for (uint32_t i = 0; i < 3; ++i) {
            colony::StageStats st = local;
            st.node_id = nodes[i];
            st.index = i;
            st.layers = {cut[i], cut[i + 1]};
            st.n_hops = i < 2 ? local.n_ubatches : 0;
            st.hop_seconds = i < 2 ? local.n_ubatches * 0.004 : 0;
            s.stages.push_back(st);
        }
        return s;
    }

    std::string cluster_json() const override {
        json c = json::parse(b_.cluster_json());
        json local = c["nodes"][0];
        const uint32_t n = model_info().n_layer;
        const uint32_t cut[] = {0, n * 2 / 5, n * 4 / 5, n};
        local["layers"] = {{"first", cut[0]}, {"last", cut[1]}};
        json phone = local;
        phone["id"] = "pixel-7";
        phone["name"] = "pixel-7";
        phone["role"] = "worker";
        phone["device"] = "Google Tensor G2 (Android 14, Termux)";
        phone["layers"] = {{"first", cut[1]}, {"last", cut[2]}};
        phone["link_rtt_ms"] = 4.2;
        phone["battery"] = {{"percent", 78}, {"charging", false}};
        phone["temperature_c"] = 41.5;
        json board = local;
        board["id"] = "raspberrypi";
        board["name"] = "raspberrypi";
        board["role"] = "worker";
        board["device"] = "Cortex-A76 x4 (Raspberry Pi 5)";
        board["layers"] = {{"first", cut[2]}, {"last", cut[3]}};
        board["state"] = "loading";
        board["progress"] = 0.6;
        board["tokens_per_s"] = 0;
        board["link_rtt_ms"] = 1.3;
        board["temperature_c"] = 55.0;
        c["nodes"] = json::array({local, phone, board});
        return c.dump();
    }

  private:
    colony::LocalBackend &b_;
};

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    try {
        colony::LocalBackendOptions o;
        o.model_path = argv[1];
        o.n_parallel = 2;
        o.n_ctx = 2048;
        o.n_threads = 2;
        colony::LocalBackend local(o);
        ThreeNodeView view(local);
        colony::OpenAiServerOptions so;
        so.port = 0;
        colony::OpenAiServer server(view, local.tokenizer(), so);
        std::printf("colony: listening on http://127.0.0.1:%u/\n", server.port());
        std::fflush(stdout);
        local.wait_ready();
        std::printf("colony: model %s ready\n", local.model_info().id.c_str());
        std::fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "colony-cluster-demo: %s\n", e.what());
        return 1;
    }
    llama_backend_free();
    return 0;
}
