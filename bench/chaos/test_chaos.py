"""Offline unit tests of the chaos harness (no colony, no root):
python3 -m unittest -v test_chaos  (from bench/chaos; CTest: Chaos.Unit)."""

import http.server
import io
import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaoslib import client, report, rounds, schedule  # noqa: E402

TEXT = " = Title = \r\n " + " ".join(f"word{i} is here ," for i in range(3000))


class Schedule(unittest.TestCase):
    def test_the_same_seed_gives_the_same_schedule(self):
        for short in (False, True):
            for netlab in (False, True):
                if short and netlab:
                    continue
                a = schedule.build(7, 100, TEXT, short=short, netlab=netlab)
                b = schedule.build(7, 100, TEXT, short=short, netlab=netlab)
                self.assertEqual(json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True))

    def test_another_seed_gives_another_schedule(self):
        a_req, a_f = schedule.build(1, 100, TEXT)
        b_req, b_f = schedule.build(2, 100, TEXT)
        self.assertNotEqual(a_req, b_req)
        self.assertNotEqual([(f["kind"], f["target"], f["phase"]) for f in a_f],
                            [(f["kind"], f["target"], f["phase"]) for f in b_f])

    def test_the_full_schedule_covers_every_fault(self):
        _, faults = schedule.build(3, 100, TEXT, netlab=True)
        kills = {(f["target"], f["phase"]) for f in faults if f["kind"] == "kill"}
        self.assertEqual(kills, {(t, p) for t in ("first", "middle", "last") for p in ("prefill", "decode")})
        kinds = [f["kind"] for f in faults]
        for k in schedule.KINDS:
            self.assertIn(k, kinds)
        by = {f["kind"]: f for f in faults}
        self.assertEqual(by["stop"]["duration_s"], 10.0)
        self.assertLessEqual(by["kill-restart"]["restart_after_s"], 1.0)
        self.assertIsNotNone(by["double-kill"]["target2"])
        self.assertNotEqual(by["double-kill"]["target2"], by["double-kill"]["target"])
        self.assertEqual(by["flap"]["duration_s"], 1.5)
        self.assertEqual(by["loss"]["duration_s"], 60.0)
        self.assertEqual([f["index"] for f in faults], list(range(1, len(faults) + 1)))

    def test_every_request_runs_in_exactly_one_round(self):
        for netlab in (False, True):
            reqs, faults = schedule.build(5, 100, TEXT, netlab=netlab)
            ids = [i for f in faults for i in f["requests"]]
            self.assertEqual(sorted(ids), [r["id"] for r in reqs])
            sizes = [len(f["requests"]) for f in faults if not f.get("not_run")]
            self.assertLessEqual(max(sizes) - min(sizes), 1)

    def test_without_the_lab_the_link_faults_are_listed_as_not_run(self):
        _, loop = schedule.build(4, 100, TEXT, netlab=False)
        _, lab = schedule.build(4, 100, TEXT, netlab=True)
        for f in loop:
            if f["kind"] in schedule.NETLAB:
                self.assertIn("--netlab", f["not_run"])
                self.assertEqual(f["requests"], [])
            else:
                self.assertNotIn("not_run", f)
        strip = lambda fs: [{k: v for k, v in f.items() if k not in ("requests", "not_run")} for f in fs]  # noqa: E731
        self.assertEqual(strip(loop), strip(lab))  # the same kills with and without the lab

    def test_the_short_schedule(self):
        reqs, faults = schedule.build(1, 12, TEXT, short=True)
        self.assertEqual([(f["kind"], f["target"]) for f in faults][0::2], [("kill", "middle"), ("kill-restart", "last")])
        self.assertEqual(faults[0]["phase"], "decode")
        self.assertEqual((faults[1]["kind"], faults[1]["duration_s"]), ("stop", 3.0))
        self.assertLessEqual(faults[2]["restart_after_s"], 1.0)
        self.assertEqual([len(f["requests"]) for f in faults], [4, 4, 4])

    def test_only_keeps_the_named_kinds(self):
        _, faults = schedule.build(1, 10, TEXT, only={"stop"})
        self.assertEqual([f["kind"] for f in faults], ["stop"])
        self.assertEqual(faults[0]["requests"], list(range(10)))

    def test_requests(self):
        reqs = schedule.make_requests(9, 200, TEXT)
        self.assertEqual([r["id"] for r in reqs], list(range(200)))
        for r in reqs:
            self.assertTrue(40 <= r["max_tokens"] <= 120)
            self.assertTrue(0 < len(r["prompt"]) <= 360)
            self.assertEqual(r["prompt"], r["prompt"].strip())
            self.assertNotIn("\r", r["prompt"])
            self.assertEqual(r["seed"] is None, r["temperature"] == 0.0)
        greedy = sum(1 for r in reqs if r["temperature"] == 0)
        streams = sum(1 for r in reqs if r["stream"])
        self.assertTrue(60 < greedy < 140 and 60 < streams < 140)


def rec(text="abc", error="", stream=False, done=True, tokens=3, finish="length", events=()):
    return {"id": 0, "stream": stream, "status": 200, "error": error, "text": text, "finish_reason": finish,
            "completion_tokens": tokens, "sent_ms": 1000.0, "end_ms": 2000.0, "events_ms": list(events),
            "done": done}


class Verdicts(unittest.TestCase):
    REQ = {"id": 0, "max_tokens": 3, "stream": False}

    def test_ok_lost_wrong(self):
        self.assertEqual(client.verdict(self.REQ, rec(), ["abc"]), ("ok", ""))
        self.assertEqual(client.verdict(self.REQ, rec(), ["xyz", "abc"])[0], "ok")  # either reference
        self.assertEqual(client.verdict(self.REQ, None, ["abc"])[0], "lost")
        self.assertEqual(client.verdict(self.REQ, rec(error="HTTP 503: x"), ["abc"]), ("lost", "HTTP 503: x"))
        self.assertEqual(client.verdict(self.REQ, rec(stream=True, done=False), ["abc"])[0], "lost")
        self.assertEqual(client.verdict(self.REQ, rec(text="abd"), ["abc"])[0], "wrong")
        self.assertIn("usage", client.verdict(self.REQ, rec(tokens=2), ["abc"])[1])
        self.assertIn("finish_reason", client.verdict(self.REQ, rec(finish="stop"), ["abc"])[1])
        self.assertIn("no reference", client.verdict(self.REQ, rec(), [])[1])

    def test_the_difference_is_named(self):
        self.assertIn("extra text", client.text_difference("abc", "abcabc"))
        self.assertIn("missing text: 2 of 3", client.text_difference("abc", "a"))
        self.assertIn("differs at char 1", client.text_difference("abc", "axc"))

    def test_stall_is_the_largest_gap_of_the_streams_running_at_the_fault(self):
        a = rec(stream=True, events=(1100, 1150, 1900))     # gaps 100, 50, 750, end 100
        b = rec(stream=True, events=(1010, 1020))           # gaps 10, 10, then 80 to its end
        b["end_ms"] = 1100
        c = rec(stream=False)
        self.assertEqual(client.largest_gap_ms(a), 750)
        self.assertEqual(client.stall_at([a, b, c, None], 1500), 750)   # b had ended
        self.assertEqual(client.stall_at([a, b], 1050), 750)
        self.assertIsNone(client.stall_at([a], 5000))
        self.assertEqual(client.stall_at([b], 1200, 5000), None)    # b ended before the window
        self.assertEqual(client.stall_at([b], 500, 1050), 80)      # a window that b overlaps


class FakeServer(http.server.BaseHTTPRequestHandler):
    """/v1/completions: a streamed answer of 6 tokens 20 ms apart ("t0".."t5"),
    an error event when the prompt is "fail", a JSON body when not streamed."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body["stream"]:
            out = json.dumps({"choices": [{"text": "whole", "finish_reason": "length"}],
                              "usage": {"completion_tokens": body["max_tokens"]}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(6):
            if body["prompt"] == "fail" and i == 3:
                self.wfile.write(b'data: {"error": {"code": "unavailable"}}\n\ndata: [DONE]\n\n')
                return
            self.wfile.write(f'data: {json.dumps({"choices": [{"text": f"t{i}"}]})}\n\n'.encode())
            self.wfile.flush()
            time.sleep(0.02)
        self.wfile.write(b'data: {"choices": [{"text": "", "finish_reason": "length"}]}\n\n')
        self.wfile.write(b'data: {"choices": [], "usage": {"completion_tokens": 6}}\n\ndata: [DONE]\n\n')


class Client(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        cls.ep = client.Endpoint("127.0.0.1", cls.srv.server_address[1])

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.srv.server_close()

    def req(self, i, prompt="p", stream=True):
        return {"id": i, "prompt": prompt, "max_tokens": 6, "temperature": 0.0, "seed": None, "stream": stream}

    def test_a_stream_is_read_event_by_event(self):
        r = client.complete(self.ep, self.req(0), 10)
        self.assertEqual((r["text"], r["done"], r["completion_tokens"], r["finish_reason"]), ("t0t1t2t3t4t5", True, 6,
                                                                                             "length"))
        self.assertEqual(len(r["events_ms"]), 6)
        self.assertEqual(client.verdict(self.req(0), r, ["t0t1t2t3t4t5"]), ("ok", ""))

    def test_an_error_event_loses_the_request(self):
        r = client.complete(self.ep, self.req(1, "fail"), 10)
        self.assertEqual(r["text"], "t0t1t2")
        self.assertEqual(client.verdict(self.req(1), r, ["t0t1t2t3t4t5"])[0], "lost")

    def test_not_streamed_and_unreachable(self):
        r = client.complete(self.ep, self.req(2, stream=False), 10)
        self.assertEqual((r["text"], r["completion_tokens"]), ("whole", 6))
        dead = client.Endpoint("127.0.0.1", 1)
        r = client.complete(dead, self.req(3), 5)
        self.assertEqual(client.verdict(self.req(3), r, ["x"])[0], "lost")
        self.assertEqual(dead.get_json("/health"), (0, None))

    def test_a_round_waits_for_decode_and_collects_every_record(self):
        reqs = [self.req(i, stream=i % 2 == 0) for i in range(6)]
        rnd = rounds.Round(self.ep, reqs, 3, 10).start()
        self.assertEqual(rnd.wait_phase("decode", 0), "")
        self.assertTrue(any(n >= rounds.DECODE_EVENTS for n in rnd.events.values()))
        recs = rnd.wait_done()
        self.assertEqual([r["id"] for r in recs], list(range(6)))
        self.assertTrue(all(r["error"] == "" for r in recs))


    def test_a_wrong_answer_that_a_fault_free_rerun_reproduces_is_unstable(self):
        import types

        import chaos
        reqs = [self.req(i) for i in range(4)]
        results = [{"id": 0, "fault": 1, "stream": True, "verdict": "wrong", "why": "differs",
                    "record": dict(rec(stream=True, text="t0t1t2t3t4t5"))},
                   {"id": 1, "fault": 1, "stream": True, "verdict": "wrong", "why": "differs",
                    "record": dict(rec(stream=True, text="t0t1XX"))}]
        args = types.SimpleNamespace(seed=1, concurrency=2, request_timeout=10)
        saved, chaos.log = chaos.log, lambda msg: None
        try:
            chaos.recheck_wrong(types.SimpleNamespace(ep=self.ep), args, results, reqs, tries=2)
        finally:
            chaos.log = saved
        self.assertEqual([r["verdict"] for r in results], ["unstable", "wrong"])
        self.assertIn("2 of 2 fault-free reruns", results[0]["why"])
        self.assertIn("none of 2", results[1]["why"])


class Report(unittest.TestCase):
    def faults(self):
        return [{"index": 1, "kind": "kill", "target": "middle", "target_desc": "middle=w1", "phase": "decode",
                 "t_inject_ms": 10_000.0, "at_injection": "4 running", "counts": {"requests": 4, "ok": 4, "lost": 0,
                 "wrong": 0}, "stall_ms": 812.0, "actions": ["+0.00s SIGKILL w1"]},
                {"index": 2, "kind": "stop", "target": "last", "phase": "decode", "t_inject_ms": 20_000.0,
                 "counts": {"requests": 4, "ok": 3, "lost": 1, "wrong": 0}, "stall_ms": None},
                {"index": 3, "kind": "flap", "target": "first", "phase": "decode", "not_run": "needs --netlab"}]

    def test_recoveries_go_to_the_fault_before_them(self):
        entries = [{"epoch": 4, "lost": "w1", "detected_unix_ms": 10_300, "resumed_unix_ms": 10_900,
                    "replacement": "spare", "requests_replayed": 4, "tokens_recomputed": 250},
                   {"epoch": 6, "lost": "w2", "detected_unix_ms": 19_800, "resumed_unix_ms": 0,
                    "replacement": "replan", "requests_replayed": 2, "tokens_recomputed": 10}]
        faults = self.faults()
        m = report.match_recoveries(faults, entries)
        self.assertEqual([e["epoch"] for e in m[1]], [4])
        self.assertEqual([e["epoch"] for e in m[2]], [6])  # within the 500 ms slack before the injection
        fig = report.recovery_figures(faults[0], m[1])
        self.assertEqual((fig["detect_ms"], fig["resume_ms"], fig["recomputed"], fig["served_by"]),
                         (300, 900, 250, "spare"))
        self.assertIsNone(report.recovery_figures(faults[1], m[2])["resume_ms"])  # not resumed yet
        self.assertIsNone(report.match_recoveries(faults, None))
        self.assertEqual(report.recovery_figures(faults[0], [])["served_by"], "no recovery")

    def test_a_binary_without_recoveries_gets_na(self):
        faults = self.faults()
        for f in faults[:2]:
            f["recovery"] = report.recovery_figures(f, None)
        row = report.fault_row(faults[0])
        self.assertEqual(row[10:], ["812", "n/a", "n/a", "n/a", "n/a"])
        self.assertIn("not run", report.fault_row(faults[2]))
        results = {"faults": faults, "requests": [
            {"id": 0, "fault": 1, "stream": True, "verdict": "ok", "why": ""},
            {"id": 1, "fault": 2, "stream": False, "verdict": "lost", "why": "HTTP 503: gone"}],
            "meta": {"title": "Run", "machine": {"date": "d", "cpu": "c", "cores": 2, "kernel": "k"}, "netlab": False,
                     "seed": 1, "binary": "colony", "binary_version": "v", "binary_mtime": "t",
                     "has_recoveries": False, "command": "chaos.py", "requests": 2, "reference_ok": 2,
                     "reference_s": 1.0, "unstable": 0, "kv_type": "f32"}}
        self.assertEqual(report.totals(results), {"requests": 2, "ok": 1, "lost": 1, "wrong": 0, "unstable": 0})
        text = report.render(results)
        self.assertIn("| 1 | kill | middle=w1 | decode | 10000 |", text)
        self.assertIn("HTTP 503: gone", text)
        self.assertIn("no (n/a below)", text)
        out = io.StringIO()
        report.print_table(results, out)
        self.assertIn("2 requests, 1 ok, 1 lost, 0 wrong, 0 unstable", out.getvalue())
        faults[1]["counts"].update(wrong=1, unstable=2)
        self.assertEqual(report.fault_row(faults[1])[9], "1 (+2 unstable)")

    def test_the_document_keeps_the_text_around_the_section(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reliability.md")
            b, e = report.markers("loopback")
            report.write_doc(path, "first", "loopback")
            with open(path) as f:
                self.assertIn(f"{b}\nfirst\n{e}", f.read())
            with open(path, "w") as f:
                f.write(f"# Reliability\n\nintro\n\n{b}\nold\n{e}\n\nafter\n")
            report.write_doc(path, "new", "loopback")
            report.write_doc(path, "lab", "netlab")
            nb, ne = report.markers("netlab")
            with open(path) as f:
                self.assertEqual(f.read(), f"# Reliability\n\nintro\n\n{b}\nnew\n{e}\n\nafter\n\n{nb}\nlab\n{ne}\n")


if __name__ == "__main__":
    unittest.main()
