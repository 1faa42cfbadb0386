#!/usr/bin/env python3
"""Lists the tests a CTest run skipped, with their reasons, and fails the run
when a test skipped for anything but a named missing prerequisite.

    scripts/check-skips.py JUNIT_XML

JUNIT_XML is what `ctest --output-junit` wrote. A test may skip only with a
reason that starts with "prerequisite missing: root" or "prerequisite missing:
network namespaces" (tests/common/prerequisite.h; the bash tests print
"SKIP: prerequisite missing: ..."). With COLONY_TEST_STRICT=1 (set by .ci/run)
no skip at all is allowed. Tests that CTest did not run (disabled, or "Not
Run") count as skipped without a reason.

Exit status: 0 when every skip is allowed, 1 otherwise, 2 on a bad file.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

ALLOWED = ("prerequisite missing: root", "prerequisite missing: network namespaces")
REASON = re.compile(r"(prerequisite missing: [^\n]*|SKIP: [^\n]*)")


def skip_reason(output: str) -> str:
    """The line that says why a test skipped: the prerequisite line, else the
    line after gtest's "Skipped", else the last non-empty line of output."""
    m = REASON.search(output)
    if m:
        return m.group(1).removeprefix("SKIP: ")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith("Skipped") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[-1] if lines else "(no output)"


def skipped_tests(root: ET.Element):
    """(name, reason) of every test case that did not run to a verdict."""
    for case in root.iter("testcase"):
        status = case.get("status", "")
        skipped = case.find("skipped")
        if skipped is None and status not in ("notrun", "disabled", "skipped"):
            continue
        out = case.findtext("system-out") or ""
        reason = skip_reason(out)
        if status == "disabled":
            reason = "disabled: " + reason
        yield case.get("name", "?"), reason


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        root = ET.parse(argv[1]).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"check-skips: cannot read {argv[1]}: {e}", file=sys.stderr)
        return 2
    strict = os.environ.get("COLONY_TEST_STRICT") == "1"
    skips = list(skipped_tests(root))
    bad = [(n, r) for n, r in skips if strict or not r.startswith(ALLOWED)]
    total = sum(1 for _ in root.iter("testcase"))
    print(f"check-skips: {total} tests, {len(skips)} skipped"
          + (" (COLONY_TEST_STRICT=1: none allowed)" if strict else ""))
    for name, reason in skips:
        mark = "NOT ALLOWED" if (name, reason) in bad else "allowed"
        print(f"  skipped [{mark}] {name}: {reason}")
    if bad:
        print(f"check-skips: {len(bad)} test(s) skipped for a reason that is not an allowed "
              "prerequisite; a skip must not hide a failure (tests/common/prerequisite.h)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
