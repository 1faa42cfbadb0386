// Writes the seed inputs of the fuzz targets whose formats colony's own
// encoders make (wire frames, beacons, join tokens and a tokens file, ZAP
// requests, API bodies) into <dir>/<target>/. scripts/fuzz.sh runs it before
// fuzzing, so the seeds follow the formats as they change; the GGUF and shard
// seeds are files in tests/fuzz/seeds.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../net/wire_samples.h"
#include "net/discovery.h"
#include "net/keys.h"
#include "net/tokens.h"
#include "net/wire.h"
#include "net/zap.h"

namespace fs = std::filesystem;
using namespace colony;

namespace {

void put(const fs::path &dir, const std::string &name, const std::string &bytes) {
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void wire_seeds(const fs::path &dir) {
    int i = 0;
    for (const WireMessage &m : test::sample_messages()) {
        const std::vector<uint8_t> f = wire_encode(m);
        put(dir, "msg" + std::to_string(i++) + "-" + wire_type_name(wire_message_type(m)),
            std::string(f.begin(), f.end()));
    }
}

void token_seeds(const fs::path &dir) {
    JoinToken t;
    t.coordinator_public_z85 = curve_keypair_generate().public_z85;
    t.join_keys = curve_keypair_generate();
    put(dir, "token", "\x00" + join_token_format(t));
    const fs::path tmp = fs::temp_directory_path() / "colony-make-seeds";
    fs::remove_all(tmp);
    TokenStore store(tmp);
    store.create();
    store.revoke(store.create().id);
    std::ifstream f(store.path(), std::ios::binary);
    put(dir, "tokens-file", "\x01" + std::string(std::istreambuf_iterator<char>(f), {}));
    fs::remove_all(tmp);
}

void zap_seeds(const fs::path &dir) {
    const std::string sep("\xFF\x00", 2);
    const std::vector<std::string> parts = {"1.0", "1",     kZapDomainControl,   "127.0.0.1",
                                            "",    "CURVE", std::string(32, 'A')};
    std::string admitted;
    for (size_t i = 0; i < parts.size(); ++i)
        admitted += (i ? sep : "") + parts[i];
    put(dir, "curve-admitted", admitted);
    put(dir, "null-mechanism",
        "1.0" + sep + "2" + sep + kZapDomainData + sep + "10.0.0.2" + sep + sep + "NULL");
}

void api_seeds(const fs::path &dir) {
    const std::vector<std::string> bodies = {
        R"({"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0.5,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}})",
        R"({"prompt":"Once","max_tokens":4,"logprobs":2,"seed":3,"n":2})",
        R"({"model":"m","messages":[{"role":"user","content":"hi","images":[]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"format":"json","options":{"temperature":0,"num_predict":4}})",
        R"({"model":"m","prompt":"Once","system":"s","raw":false,"options":{"top_k":4,"stop":["x"]}})",
        R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"tools":[{"type":"function","name":"f","parameters":{}}],"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}}})",
        R"({"model":"m","max_tokens":8,"system":"s","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}})",
        R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}},"tool_choice":"required","tools":[{"type":"function","function":{"name":"g"}}],"logprobs":true,"top_logprobs":3,"grammar":"root ::= \"a\""})",
    };
    for (size_t i = 0; i < bodies.size(); ++i)
        put(dir, "body" + std::to_string(i), std::string(1, static_cast<char>(i)) + bodies[i]);
}

/// Frames for fuzz_stage_frames (u16 length + frame each): a prompt of 4
/// tokens for sequence 0 with a grammar and logprobs, a decode step, a second
/// sequence, and releases.
void stage_frame_seeds(const fs::path &dir) {
    auto act = [](int32_t seq, std::vector<int32_t> tokens, int32_t pos0, bool options) {
        WireActivations a;
        a.plan_epoch = 1;
        a.n_tokens = static_cast<uint32_t>(tokens.size());
        WireSeq q = wire_seq(seq, a.n_tokens);
        q.sampling.temperature = 0.7f;
        q.sampling.top_k = 8;
        q.sampling.penalty_last_n = 8;
        q.sampling.penalty_repeat = 1.1f;
        if (options) {
            q.has_options = true;
            q.options.n_probs = 3;
            q.options.n_prompt = a.n_tokens;
            q.options.grammar = "root ::= [a-z ]+";
        }
        a.seqs = {q};
        a.tokens = tokens;
        for (uint32_t i = 0; i < a.n_tokens; ++i) {
            a.pos.push_back(pos0 + static_cast<int32_t>(i));
            a.seq_id.push_back(seq);
        }
        a.outputs = {a.n_tokens - 1};
        WireMessage m;
        m.request_id = 7;
        m.body = a;
        return m;
    };
    std::string s;
    auto frame = [&](const WireMessage &m) {
        const std::vector<uint8_t> f = wire_encode(m);
        s.push_back(static_cast<char>(f.size() & 0xFF));
        s.push_back(static_cast<char>(f.size() >> 8));
        s.append(f.begin(), f.end());
    };
    frame(act(0, {1, 30, 40, 50}, 0, true));
    frame(act(0, {60}, 4, false));
    frame(act(1, {1, 70}, 0, false));
    auto release = [](int32_t seq, int32_t p0) {
        WireMessage m;
        m.request_id = 7;
        m.body = WireSeqRelease{seq, p0, 1};
        return m;
    };
    frame(release(0, 3));
    frame(act(0, {80}, 3, false));
    {
        WireMessage m;  // a context shift of sequence 0: drop [1, 2), move [2, 4) down
        m.request_id = 7;
        m.body = WireSeqShift{1, 0, 1, 1, 4};
        frame(m);
    }
    frame(act(0, {81}, 3, false));
    frame(release(-1, 0));
    put(dir, "session", s);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    const fs::path dir = argv[1];
    wire_seeds(dir / "wire");
    Beacon b{"home", "0123456789abcdef", 7411, 8080, "laptop"};
    put(dir / "beacon", "beacon", beacon_encode(b));
    token_seeds(dir / "token");
    zap_seeds(dir / "zap");
    api_seeds(dir / "api_request");
    stage_frame_seeds(dir / "stage_frames");
    return 0;
}
