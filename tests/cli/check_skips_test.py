#!/usr/bin/env python3
"""Unit tests of scripts/check-skips.py on hand-written CTest JUnit files."""
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-skips.py"


def junit(*cases):
    body = "".join(
        f'<testcase name="{n}" classname="{n}" time="0" status="{s}">'
        f"<system-out>{out}</system-out></testcase>" for n, s, out in cases)
    return f'<?xml version="1.0"?><testsuite tests="{len(cases)}">{body}</testsuite>'


def check(xml, strict=False):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    env = dict(os.environ)
    env.pop("COLONY_TEST_STRICT", None)
    if strict:
        env["COLONY_TEST_STRICT"] = "1"
    r = subprocess.run([sys.executable, str(SCRIPT), f.name], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    return r.returncode, r.stdout


PREREQ = ("a.root", "notrun", "x.cpp:3: Skipped\nprerequisite missing: root (not running as root)\n")
NETNS = ("b.sh", "notrun", "SKIP: prerequisite missing: network namespaces (ip netns add failed)\n")
BAD = ("c.bad", "notrun", "x.cpp:9: Skipped\nthe cluster did not start\n[  SKIPPED ] c.bad\n")
PASSED = ("d.ok", "run", "[  PASSED  ] 1 test.\n")


class CheckSkips(unittest.TestCase):
    def test_no_skip_passes(self):
        rc, out = check(junit(PASSED), strict=True)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 tests, 0 skipped", out)

    def test_named_prerequisites_are_allowed_outside_strict_mode(self):
        rc, out = check(junit(PREREQ, NETNS, PASSED))
        self.assertEqual(rc, 0, out)
        self.assertIn("a.root: prerequisite missing: root (not running as root)", out)

    def test_strict_mode_allows_no_skip(self):
        rc, out = check(junit(PREREQ, PASSED), strict=True)
        self.assertEqual(rc, 1, out)

    def test_any_other_reason_fails_and_is_listed(self):
        rc, out = check(junit(PREREQ, BAD, PASSED))
        self.assertEqual(rc, 1, out)
        self.assertIn("[NOT ALLOWED] c.bad: the cluster did not start", out)

    def test_disabled_tests_fail(self):
        rc, out = check(junit(("e.dis", "disabled", "Disabled"), PASSED))
        self.assertEqual(rc, 1, out)

    def test_unreadable_file_is_an_error(self):
        rc, _ = check("<not xml")
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    unittest.main()
