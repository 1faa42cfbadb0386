// A stage's compute threads land on the cores of StageConfig::cpu (read back
// from the kernel with sched_getaffinity for every thread of the process),
// and pinning does not change the logits.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "common/test_env.h"
#include "model/gguf_file.h"
#include "runtime/stage.h"
#include "runtime/tokenizer.h"
#include "util/error.h"
#include "util/thread_affinity.h"  // allowed_cores

namespace colony::test {
namespace {

/// Affinity of every thread of this process, one core list per thread.
std::vector<std::vector<int>> thread_affinities() {
    std::vector<std::vector<int>> out;
    for (const auto &e : std::filesystem::directory_iterator("/proc/self/task")) {
        const pid_t tid = static_cast<pid_t>(std::stol(e.path().filename().string()));
        cpu_set_t set;
        if (sched_getaffinity(tid, sizeof set, &set) != 0)
            continue;  // the thread ended meanwhile
        std::vector<int> cores;
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set))
                cores.push_back(c);
        out.push_back(cores);
    }
    return out;
}

size_t count_pinned(const std::vector<std::vector<int>> &affinities,
                    const std::vector<int> &cores) {
    return static_cast<size_t>(std::count(affinities.begin(), affinities.end(), cores));
}

/// The model, and "Once upon a time" as one ubatch of sequence 0 with the
/// last row's logits wanted.
struct Prompt {
    std::shared_ptr<const GgufFile> file = GgufFile::open(model_path("stories260K-f32.gguf"));
    ModelHparams hp = ModelHparams::from_gguf(*file);
    std::vector<int32_t> tokens = Tokenizer(file->path()).tokenize("Once upon a time", true, false);
    std::vector<int32_t> pos, seq = std::vector<int32_t>(tokens.size(), 0);
    int32_t row = static_cast<int32_t>(tokens.size() - 1);

    Prompt() {
        for (size_t i = 0; i < tokens.size(); ++i)
            pos.push_back(static_cast<int32_t>(i));
    }
    Ubatch ubatch() const {
        return Ubatch{static_cast<uint32_t>(tokens.size()),
                      tokens.data(),
                      nullptr,
                      pos.data(),
                      seq.data(),
                      &row,
                      1};
    }
    /// A whole-model stage of 64 cells and 2 threads.
    StageConfig config() const {
        StageConfig cfg;
        cfg.range = {0, hp.n_layer};
        cfg.n_ctx = 64;
        cfg.n_threads = 2;
        return cfg;
    }
};

struct PinnedRun {
    std::vector<float> logits;
    std::vector<std::vector<int>> affinities;  // read while the stage was alive
};

/// Runs a 2-thread stage with `cpu` on a thread of its own (the pinned
/// threads end with it) over a short prompt. An unpinned stage runs first on
/// that thread, so ggml's second thread (OpenMP's, made by the first graph)
/// does not inherit a pinned caller's affinity: what it has, ggml gave it.
PinnedRun run_on_thread(const CpuAffinity &cpu) {
    PinnedRun r;
    std::thread t([&] {
        const Prompt p;
        const Ubatch ub = p.ubatch();
        StageConfig cfg = p.config();
        Stage(p.file, p.hp, cfg).forward(ub);  // the unpinned warm-up
        cfg.cpu = cpu;
        Stage stage(p.file, p.hp, cfg);
        const float *l = stage.forward(ub);
        r.logits.assign(l, l + p.hp.n_vocab);
        r.affinities = thread_affinities();
    });
    t.join();
    return r;
}

TEST(StageThreads, ComputeThreadsRunOnTheGivenCores) {
    const std::vector<int> cores = allowed_cores();
    ASSERT_FALSE(cores.empty());
    const PinnedRun free_run = run_on_thread({});
    const int last = cores.back();
    const size_t before = count_pinned(thread_affinities(), {last});

    const PinnedRun pinned = run_on_thread(CpuAffinity{{last}, false, 0});
    // the caller (thread 0) and ggml's second compute thread
    EXPECT_GE(count_pinned(pinned.affinities, {last}), before + 2);
    EXPECT_EQ(pinned.logits, free_run.logits);  // placement changes no float
    // the pinned threads ended with their thread; this one is untouched
    EXPECT_EQ(allowed_cores(), cores);
}

TEST(StageThreads, StrictPlacementPutsOneThreadOnEachCore) {
    const std::vector<int> cores = allowed_cores();
    if (cores.size() < 2)
        GTEST_SKIP() << "needs two cores this process may run on";
    const int a = cores[cores.size() - 2], b = cores.back();
    const size_t before_a = count_pinned(thread_affinities(), {a});
    const size_t before_b = count_pinned(thread_affinities(), {b});
    const PinnedRun r = run_on_thread(CpuAffinity{{a, b}, true, 0});
    EXPECT_EQ(count_pinned(r.affinities, {a}), before_a + 1);
    EXPECT_EQ(count_pinned(r.affinities, {b}), before_b + 1);
}

TEST(StageThreads, FewerThreadsGiveTheSameLogits) {
    const Prompt p;
    const ModelHparams &hp = p.hp;
    Stage stage(p.file, hp, p.config());
    const Ubatch ub = p.ubatch();
    const float *l = stage.forward(ub);
    const std::vector<float> two(l, l + hp.n_vocab);
    stage.seq_rm(0);
    stage.set_n_threads(1);  // what --max-temp does to a hot stage
    EXPECT_EQ(stage.n_threads(), 1);
    l = stage.forward(ub);
    EXPECT_EQ(std::vector<float>(l, l + hp.n_vocab), two);
    EXPECT_THROW(stage.set_n_threads(0), Error);
    EXPECT_THROW(stage.set_n_threads(3), Error);  // more than the threadpool holds
}

TEST(StageThreads, BadCoresAndPrioritiesAreRefused) {
    const Prompt p;
    StageConfig cfg = p.config();
    cfg.cpu.cores = {512};
    EXPECT_THROW(Stage(p.file, p.hp, cfg), Error);
    cfg.cpu.cores = {};
    cfg.cpu.prio = 7;
    EXPECT_THROW(Stage(p.file, p.hp, cfg), Error);
}

}  // namespace
}  // namespace colony::test
