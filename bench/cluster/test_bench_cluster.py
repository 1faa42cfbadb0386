"""Offline unit tests of the cluster benchmark harness (no root, no lab):
python3 -m unittest -v test_bench_cluster  (from bench/cluster; CTest: BenchCluster.Unit)."""

import http.server
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import gguf, lab, limit, models, openai, proc, report, split, stats, systems  # noqa: E402

MODELS_DIR = os.environ.get("COLONY_MODELS_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                                         "models"))


class Prerequisites(unittest.TestCase):
    def test_a_missing_prerequisite_skips_and_fails_when_strict(self):
        import contextlib
        import io

        import bench_cluster
        saved = os.environ.pop("COLONY_TEST_STRICT", None)
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = bench_cluster.skip_missing(("network namespaces", "cannot create veth pairs"))
            self.assertEqual(rc, 77)
            self.assertEqual(out.getvalue(), "SKIP: prerequisite missing: network namespaces (cannot create veth pairs)\n")
            os.environ["COLONY_TEST_STRICT"] = "1"
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = bench_cluster.skip_missing(("root", "not running as root"))
            self.assertEqual(rc, 1)
            self.assertEqual(out.getvalue(), "SKIP: prerequisite missing: root (not running as root)\n")
            self.assertIn("COLONY_TEST_STRICT=1 forbids skipping", err.getvalue())
        finally:
            os.environ.pop("COLONY_TEST_STRICT", None)
            if saved is not None:
                os.environ["COLONY_TEST_STRICT"] = saved


class Stats(unittest.TestCase):
    def test_percentile_interpolates_linearly(self):
        xs = [4, 1, 3, 2]  # sorted 1 2 3 4
        self.assertEqual(stats.percentile(xs, 0), 1)
        self.assertEqual(stats.percentile(xs, 100), 4)
        self.assertAlmostEqual(stats.percentile(xs, 50), 2.5)
        self.assertAlmostEqual(stats.percentile(xs, 90), 3.7)  # numpy: 3.7
        self.assertAlmostEqual(stats.percentile(list(range(1, 101)), 99), 99.01)

    def test_bad_input_is_an_error(self):
        with self.assertRaises(ValueError):
            stats.percentile([], 50)
        with self.assertRaises(ValueError):
            stats.percentile([1], 101)
        with self.assertRaises(ValueError):
            stats.mean([])

    def test_stddev(self):
        self.assertAlmostEqual(stats.stddev([2, 4, 4, 4, 5, 5, 7, 9]), 2.138089935, places=6)
        self.assertEqual(stats.stddev([3]), 0.0)


class Split(unittest.TestCase):
    def test_even_split_gives_the_remainder_to_the_first_stages(self):
        self.assertEqual(split.even_split(5, 2), [3, 2])
        self.assertEqual(split.even_split(16, 3), [6, 5, 5])
        self.assertEqual(split.even_split(32, 4), [8, 8, 8, 8])
        with self.assertRaises(split.SplitError):
            split.even_split(2, 3)

    def test_parse_split_forms(self):
        self.assertEqual(split.parse_split("even", 16, 2), [8, 8])
        self.assertEqual(split.parse_split("10,6", 16, 2), [10, 6])
        self.assertEqual(split.parse_split("0:3,3:5", 5, 2), [3, 2])
        self.assertEqual(split.parse_split("0,8,8,8,8", 32, 5), [0, 8, 8, 8, 8])
        for bad, n, s in (("3,3", 5, 2), ("0:3,4:5", 5, 2), ("1,2,2", 5, 2), ("a,b", 5, 2), ("5,0", 5, 2)):
            with self.assertRaises(split.SplitError, msg=bad):
                split.parse_split(bad, n, s)

    def test_colony_ranges(self):
        self.assertEqual(split.colony_ranges([3, 2]), "0:3,3:5")
        self.assertEqual(split.colony_ranges([6, 5, 5]), "0:6,6:11,11:16")

    def test_rpc_args_reproduce_the_split_under_llamas_rule(self):
        for n_layer, counts in ((5, [3, 2]), (16, [6, 5, 5]), (16, [8, 8]), (32, [0, 8, 8, 8, 8]),
                                (32, [0, 9, 8, 8, 7]), (28, [10, 9, 9]), (24, [1, 23])):
            owners = split.rpc_layer_owner(counts, n_layer)
            blocks = owners[:n_layer]
            self.assertEqual(blocks.count(-1), counts[0], (n_layer, counts))
            for dev, c in enumerate(counts[1:]):
                self.assertEqual(blocks.count(dev), c, (n_layer, counts, dev))
            self.assertEqual(blocks, sorted(blocks), "layers must be contiguous per device")
            self.assertEqual(owners[n_layer], len(counts) - 2, "the output layer goes to the last host")

    def test_rpc_args_values(self):
        self.assertEqual(split.rpc_args([3, 2], 5), (3, "3"))
        self.assertEqual(split.rpc_args([6, 5, 5], 16), (11, "5/6"))
        self.assertEqual(split.rpc_args([16], 16), (0, ""))


class Limit(unittest.TestCase):
    def test_wire_bytes_add_framing_per_segment(self):
        self.assertEqual(limit.wire_bytes(0), 0)
        self.assertEqual(limit.wire_bytes(4), 70)
        self.assertEqual(limit.wire_bytes(1448), 1514)
        self.assertEqual(limit.wire_bytes(4096), 4096 + 3 * 66)

    def test_decode_limit_wifi_poor_three_stages(self):
        d = limit.decode_limit_ms(25.0, 3, 2048, 10.0, 30.0)
        hidden_ms = (4096 + 3 * 66) * 8 / 30e6 * 1e3
        token_ms = 70 * 8 / 30e6 * 1e3
        self.assertAlmostEqual(d["delay_ms"], 30.0)
        self.assertAlmostEqual(d["transfer_ms"], 2 * hidden_ms + token_ms)
        self.assertAlmostEqual(d["total_ms"], 25.0 + 30.0 + 2 * hidden_ms + token_ms)
        self.assertEqual(d["hops"], 3)

    def test_single_stage_and_unlimited_links(self):
        self.assertEqual(limit.decode_limit_ms(7.0, 1, 2048, 10, 30)["total_ms"], 7.0)
        self.assertAlmostEqual(limit.decode_limit_ms(7.0, 2, 2048, 0, 0)["total_ms"], 7.0)
        self.assertAlmostEqual(limit.ttft_limit_ms(100.0, 2, 64, 512, 3.0, 200.0),
                               100.0 + 3.0 + limit.transfer_ms(512 * 128, 200.0) + 3.0 + limit.transfer_ms(4, 200.0))


def _gguf_bytes(kvs):
    """A GGUF header with the given (key, type, value) triples and no tensors."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for key, t, v in kvs:
        out += s(key) + struct.pack("<I", t)
        if t == 8:
            out += s(v)
        elif t == 4:
            out += struct.pack("<I", v)
        elif t == 9:  # array of strings
            out += struct.pack("<IQ", 8, len(v)) + b"".join(s(x) for x in v)
    return out


class Gguf(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, data):
        p = os.path.join(self.dir, "m.gguf")
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_reads_the_shape_keys(self):
        p = self.write(_gguf_bytes([("general.architecture", 8, "llama"), ("llama.block_count", 4, 16),
                                    ("llama.embedding_length", 4, 2048), ("tokenizer.ggml.tokens", 9, ["a", "b", "c"])]))
        info = gguf.model_info(p)
        self.assertEqual((info["arch"], info["n_layer"], info["n_embd"], info["n_vocab"]), ("llama", 16, 2048, 3))

    def test_rejects_bad_files(self):
        with self.assertRaises(gguf.GgufError):
            gguf.model_info(self.write(b"GGML" + b"\0" * 40))
        with self.assertRaises(gguf.GgufError):
            gguf.model_info(self.write(_gguf_bytes([("general.architecture", 8, "llama")])[:-3]))
        with self.assertRaises(gguf.GgufError):  # no block_count
            gguf.model_info(self.write(_gguf_bytes([("general.architecture", 8, "llama")])))

    @unittest.skipUnless(os.path.exists(os.path.join(MODELS_DIR, "stories260K-q8_0.gguf")), "no stories260K")
    def test_reads_stories260k(self):
        info = gguf.model_info(os.path.join(MODELS_DIR, "stories260K-q8_0.gguf"))
        self.assertEqual((info["arch"], info["n_layer"], info["n_embd"], info["n_vocab"]), ("llama", 5, 64, 512))


LLAMA_BENCH_JSON = json.dumps([
    {"n_prompt": 512, "n_gen": 0, "avg_ts": 136.2, "stddev_ts": 1.5, "samples_ns": [1]},
    {"n_prompt": 0, "n_gen": 128, "avg_ts": 40.5, "stddev_ts": 0.25, "samples_ns": [1]}])

COLONY_BENCH_MD = """| model | threads | test | colony t/s | llama.cpp t/s | colony/llama.cpp |
| --- | ---: | --- | ---: | ---: | ---: |
| m.gguf | 2 | pp512 | 140.10 ± 2.00 | n/a | n/a |
| m.gguf | 2 | tg128 | 41.00 ± 0.30 | n/a | n/a |
"""


class Parsers(unittest.TestCase):
    def test_llama_bench_json(self):
        b = systems.parse_llama_bench(LLAMA_BENCH_JSON)
        self.assertEqual(b["pp"], (136.2, 1.5, 512))
        self.assertEqual(b["tg"], (40.5, 0.25, 128))
        with self.assertRaises(ValueError):
            systems.parse_llama_bench(json.dumps([{"n_prompt": 512, "n_gen": 0, "avg_ts": 1, "stddev_ts": 0}]))

    def test_colony_bench_markdown(self):
        b = systems.parse_colony_bench(COLONY_BENCH_MD)
        self.assertEqual(b["pp"], (140.1, 2.0, 512))
        self.assertEqual(b["tg"], (41.0, 0.3, 128))
        with self.assertRaises(ValueError):
            systems.parse_colony_bench("| a | b |\n")

    def test_probe_summary(self):
        doc = {"load_ms": 1500.0, "n_prompt": 512, "iface": "eth0", "load_bytes": 1000, "peak_rss_kib": 2048,
               "reps": [{"ttft_ms": 100.0, "step_ms": [10.0, 20.0], "prefill_bytes": 5000, "decode_bytes": 300},
                        {"ttft_ms": 300.0, "step_ms": [30.0, 40.0], "prefill_bytes": 7000, "decode_bytes": 500}]}
        m = systems.summarize_probe(doc)
        self.assertAlmostEqual(m["load_s"], 1.5)
        self.assertAlmostEqual(m["ttft_ms"], 200.0)
        self.assertAlmostEqual(m["prefill_tps"], 512 / 0.2)
        self.assertAlmostEqual(m["decode_tps"], 1e3 / 25.0)
        self.assertAlmostEqual(m["tpot_p50_ms"], 25.0)
        self.assertAlmostEqual(m["bytes_per_token"], (150 + 250) / 2)
        self.assertEqual(m["prefill_bytes"], 6000)
        doc["iface"] = ""
        self.assertNotIn("bytes_per_token", systems.summarize_probe(doc))

    def test_netem_show_and_profiles(self):
        show = ("1->2 delay_ms=3 jitter_ms=1 rate_mbit=200 loss_pct=0 cut=0 frames_in=6 bytes_out=532 queued=0\n"
                "2->1 delay_ms=3 jitter_ms=1 rate_mbit=200 loss_pct=0 cut=0 frames_in=6 bytes_out=1000 queued=0\nok\n")
        c = lab.parse_counters(show)
        self.assertEqual(c[(1, 2)]["bytes_out"], 532)
        self.assertEqual(c[(2, 1)]["delay_ms"], 3)
        later = lab.parse_counters(show.replace("bytes_out=532", "bytes_out=632"))
        self.assertEqual(lab.counters_delta(c, later), {(1, 2): 100, (2, 1): 0})
        p = lab.parse_profiles("wifi-poor  delay_ms=10 jitter_ms=5 jitter_hold_ms=1 rate_mbit=30 loss_pct=0.5\n")
        self.assertEqual(p["wifi-poor"]["rate_mbit"], 30.0)
        self.assertEqual(p["wifi-poor"]["loss_pct"], 0.5)


class Models(unittest.TestCase):
    def test_specs(self):
        self.assertEqual(models.parse_spec("synth:llama-3.2-1b:q4_k_m"), ("synth", ("llama-3.2-1b", "Q4_K_M", 1)))
        self.assertEqual(models.parse_spec("synth:llama-3-8b:Q4_K_M:7")[1][2], 7)
        self.assertEqual(models.parse_spec("/x/y.gguf"), ("path", "/x/y.gguf"))
        with self.assertRaises(models.ModelError):
            models.parse_spec("synth:llama-3-8b")
        self.assertTrue(models.cache_path("llama-3-8b", "Q4_K_M", 1, "/c").endswith("/c/llama-3-8b-q4_k_m-s1.gguf"))
        self.assertEqual(models.short_name("/a/stories260K-q8_0.gguf"), "stories260K-q8_0")
        with self.assertRaises(models.ModelError):
            models.resolve("/no/such/file.gguf", "colony")


# ---------------------------------------------------------------- OpenAI client against a fake server

class _FakeCompletions(http.server.BaseHTTPRequestHandler):
    """/v1/completions that 'generates' max_tokens tokens, one every
    server.tpot seconds after server.ttft seconds; prompt_tokens = words."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("max_tokens", 0) > 1000:
            msg = json.dumps({"error": {"message": "too many", "type": "invalid_request_error"}}).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        n, words = body["max_tokens"], len(body["prompt"].split())
        srv = self.server
        srv.prompts.append(body["prompt"])
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            time.sleep(srv.ttft)
            for i in range(n):
                if i:
                    time.sleep(srv.tpot)
                chunk = {"choices": [{"text": f" t{i}", "index": 0}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b": keep-alive comment\n\ndata: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        time.sleep(srv.ttft + srv.tpot * (n - 1))
        msg = json.dumps({"choices": [{"text": "x" * n, "index": 0, "finish_reason": "length"}],
                          "usage": {"prompt_tokens": words, "completion_tokens": n,
                                    "total_tokens": words + n}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        self.wfile.write(msg)


class OpenAIClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeCompletions)
        cls.srv.daemon_threads = True
        cls.srv.ttft, cls.srv.tpot = 0.05, 0.01
        cls.srv.prompts = []
        cls.thread = threading.Thread(target=cls.srv.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.srv.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.srv.server_close()

    def test_parse_sse(self):
        lines = ["data: {\"a\":1}\n", "\n", ": comment\n", "data: x\n", "data: y\n", "\n", "event: e\n", "data:[DONE]"]
        self.assertEqual(list(openai.parse_sse(lines)), ['{"a":1}', "x\ny", "[DONE]"])

    def test_stream_times_ttft_and_each_token(self):
        r = openai.completion(self.base, "a b c", 20, stream=True)
        self.assertTrue(r["ok"], r["error"])
        self.assertEqual(r["completion_tokens"], 20)
        self.assertEqual(len(r["token_gaps_ms"]), 19)
        self.assertGreaterEqual(r["ttft_ms"], 50)
        self.assertLess(r["ttft_ms"], 50 + 150)
        med = stats.median(r["token_gaps_ms"])
        self.assertGreaterEqual(med, 9)
        self.assertLess(med, 40)
        self.assertTrue(r["text"].startswith(" t0 t1"))

    def test_non_stream_reads_usage(self):
        r = openai.completion(self.base, "one two three four", 5)
        self.assertTrue(r["ok"], r["error"])
        self.assertEqual((r["completion_tokens"], r["prompt_tokens"]), (5, 4))
        self.assertIsNone(r["ttft_ms"])
        self.assertGreaterEqual(r["latency_ms"], 50 + 4 * 10)

    def test_http_error_is_reported(self):
        r = openai.completion(self.base, "x", 5000)
        self.assertFalse(r["ok"])
        self.assertEqual(r["status"], 400)
        self.assertIn("too many", r["error"])
        r = openai.completion("http://127.0.0.1:1", "x", 1, timeout=2)
        self.assertFalse(r["ok"])
        with self.assertRaises(openai.CompletionError):
            openai.completion("https://example.org", "x", 1)

    def test_concurrent_streams_aggregate(self):
        one = openai.run_streams(self.base, "p", 1, 10)
        four = openai.run_streams(self.base, "p", 4, 10)
        self.assertTrue(one["ok"] and four["ok"])
        self.assertEqual(four["completion_tokens"], 40)
        # the fake server runs requests in parallel: 4 streams take about as long as 1
        self.assertGreater(four["aggregate_tps"], 2.0 * one["aggregate_tps"])
        self.assertAlmostEqual(one["aggregate_tps"], 10 / one["wall_s"], places=6)
        # every stream sends a different prefix (no prompt-cache sharing)
        self.assertEqual(sorted(self.srv.prompts[-4:]), ["0 p", "1 p", "2 p", "3 p"])

    def test_wait_healthy(self):
        self.assertLess(openai.wait_healthy(self.base, timeout=5), 5)
        with self.assertRaises(openai.CompletionError):
            openai.wait_healthy("http://127.0.0.1:1", timeout=0.3)

    def test_calibrate_prompt_converges_on_reported_tokens(self):
        def send(base, prompt, n):  # 1.5 tokens per word
            return {"ok": True, "prompt_tokens": int(len(prompt.split()) * 1.5), "error": ""}
        prompt, got = systems.calibrate_prompt("http://x", 512, send=send)
        self.assertLessEqual(abs(got - 512), 5)
        self.assertEqual(got, int(len(prompt.split()) * 1.5))


# ---------------------------------------------------------------- processes

class Processes(unittest.TestCase):
    def test_timeout_kills_the_group(self):
        t0 = time.monotonic()
        r = proc.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
        self.assertTrue(r.timed_out)
        self.assertLess(time.monotonic() - t0, 10)
        with self.assertRaises(proc.ProcError):
            r.check("sleep")

    def test_peak_rss_is_the_programs_own(self):
        # 200 MiB touched for 0.3 s, then exit; the driver's RSS must not leak in
        code = "b = bytearray(200 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nimport time; time.sleep(0.3)"
        r = proc.run([sys.executable, "-c", code], timeout=30).check("alloc")
        self.assertGreater(r.maxrss_kib, 200 << 10)
        self.assertLess(r.maxrss_kib, 300 << 10)
        small = proc.run(["sleep", "0.2"], timeout=10).check("sleep")
        self.assertLess(small.maxrss_kib, 8 << 10)

    def test_output_so_far_does_not_disturb_the_writer(self):
        p = proc.Process(["sh", "-c", "echo first; sleep 0.3; echo second"])
        time.sleep(0.15)
        self.assertEqual(p.output_so_far()[0], "first\n")
        r = p.wait(10)
        self.assertEqual(r.stdout, "first\nsecond\n")

    def test_stop_returns_output(self):
        p = proc.Process(["sh", "-c", "echo started; exec sleep 30"])
        time.sleep(0.2)
        self.assertTrue(p.alive())
        r = p.stop()
        self.assertFalse(p.alive())
        self.assertIn("started", r.stdout)
        self.assertEqual(r.rc, -15)


# ---------------------------------------------------------------- report

def _record(system, stages, profile, metrics, model=None, error=None):
    model = model or {"spec": "m.gguf", "name": "m", "path": "/m.gguf", "arch": "llama", "n_layer": 16,
                      "n_embd": 2048, "n_vocab": 128256, "file_bytes": 800_000_000}
    prof = {"loopback": (0, 0), "wifi": (3, 200), "wifi-poor": (10, 30), "local": (0, 0)}[profile]
    counts = split.even_split(16, stages)
    return systems.make_record(system, model, stages, counts, {"name": profile, "delay_ms": prof[0],
                                                                 "jitter_ms": 0, "rate_mbit": prof[1],
                                                                 "loss_pct": 0}, metrics, [f"cmd {system}"],
                               error=error)


def _full(decode, hosts=1, extra=None):
    m = {"pp_tps": 130.0, "pp_sd": 2.0, "tg_tps": decode * 1.05, "tg_sd": 0.5, "load_s": 0.5, "ttft_ms": 3900.0,
         "prefill_tps": 131.0, "decode_tps": decode, "tpot_p50_ms": 1e3 / decode, "tpot_p90_ms": 1.1e3 / decode,
         "tpot_p99_ms": 1.3e3 / decode, "rss_kib": {f"h{i}": 500_000 + i for i in range(1, hosts + 1)}}
    m["rss_max_kib"] = max(m["rss_kib"].values())
    m.update(extra or {})
    return m


class Report(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        rpc_extra = {"load2_s": 0.4, "load_bytes": 8e8, "bytes_per_token": 530_000.0}
        recs = [_record("llama.cpp", 1, "local", _full(40.0)), _record("colony", 1, "local", _full(41.0))]
        for prof, dec in (("loopback", 30.0), ("wifi", 20.0), ("wifi-poor", 5.0)):
            for s in (2, 3):
                recs.append(_record("llama.cpp RPC", s, prof, _full(dec / (s - 1), s, rpc_extra)))
        recs.append(_record("llama.cpp RPC", 3, "wifi", {}, error="ProcError: boom"))
        self.runs = [{"dir": self.dir, "meta": {"machine": {"cpu": "AMD EPYC", "cores": 2, "date": "today"},
                                                "threads": 1, "reps": 3, "n_prompt": 512, "n_gen": 128},
                      "records": recs}]

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_fmt(self):
        self.assertEqual(report.fmt(None), "n/a")
        self.assertEqual(report.fmt(float("nan")), "n/a")
        self.assertEqual(report.fmt(1234.5), "1234")
        self.assertEqual(report.fmt(0.012345), "0.0123")
        self.assertEqual(report.fmt(12.345), "12.3")
        self.assertEqual(report.fmt_bytes(530_000), "530 kB")

    def test_write_replaces_only_its_section(self):
        doc = os.path.join(self.dir, "bench.md")
        with open(doc, "w") as f:
            f.write("# Title\n\nintro\n\n<!-- bench:results:begin -->\nOLD\n<!-- bench:results:end -->\n\n## After\n")
        report.write_report(self.runs, doc, os.path.join(self.dir, "plots"))
        text = report.read_text(doc)
        self.assertTrue(text.startswith("# Title\n\nintro\n\n<!-- bench:results:begin -->"))
        self.assertNotIn("OLD", text)
        self.assertIn("## After", text)
        self.assertIn("| llama.cpp RPC | 3 | 6/5/5 | wifi-poor |", text)
        self.assertIn("colony / llama.cpp, cluster of one, decode (tgN): 1.025", text)
        self.assertIn("Failed measurements", text)
        self.assertIn("ProcError: boom", text)
        self.assertIn("Physical limit", text)
        self.assertIn("cmd llama.cpp RPC", text)
        report.write_report(self.runs, doc, os.path.join(self.dir, "plots"))  # idempotent
        self.assertEqual(report.read_text(doc).count("bench:results:begin"), 1)

    def test_limit_uses_the_faster_single_node(self):
        ref = report.single_node(self.runs[0]["records"], "m")
        self.assertAlmostEqual(ref["tpot_ms"], 1e3 / 41.0)
        self.assertEqual(ref["tpot_from"], "colony")

    @unittest.skipUnless(shutil.which("gnuplot"), "gnuplot not installed")
    def test_plots_are_pngs(self):
        doc = os.path.join(self.dir, "bench.md")
        report.write_report(self.runs, doc, os.path.join(self.dir, "plots"))
        pngs = sorted(os.listdir(os.path.join(self.dir, "plots")))
        self.assertEqual(pngs, ["m-tpot-vs-delay.png", "m-tps-vs-stages.png"])
        for p in pngs:
            with open(os.path.join(self.dir, "plots", p), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_check_complete_flags_missing_and_non_positive(self):
        doc = os.path.join(self.dir, "bench.md")
        report.write_report(self.runs, doc, os.path.join(self.dir, "plots"))
        problems = report.check_complete(self.runs, doc, os.path.join(self.dir, "plots"), ["llama", "colony", "rpc"])
        self.assertEqual([p for p in problems if "boom" not in p], [])
        self.assertTrue(any("boom" in p for p in problems))
        self.runs[0]["records"] = [r for r in self.runs[0]["records"] if not r["error"]]
        self.runs[0]["records"][0]["metrics"]["tg_tps"] = 0.0
        del self.runs[0]["records"][1]["metrics"]["ttft_ms"]
        self.runs[0]["records"][2]["metrics"]["rss_kib"].pop("h2")
        problems = report.check_complete(self.runs, doc, os.path.join(self.dir, "plots"), ["llama", "colony", "rpc",
                                                                                          "colony-cluster"])
        text = "\n".join(problems)
        self.assertIn("llama.cpp S=1 local: tg_tps", text)
        self.assertIn("colony S=1 local: ttft_ms", text)
        self.assertIn("peak RSS per host incomplete", text)
        self.assertIn("colony cluster: no record", text)


if __name__ == "__main__":
    unittest.main()
