#!/usr/bin/env python3
"""`colony join` under Termux holds a wake lock while it serves and releases it on
exit: stub termux-wake-lock / termux-wake-unlock commands on PATH record their
calls. The worker joins a coordinator that does not exist and gives up after
--join-timeout, which is an exit like any other.

  wake_lock_test.py COLONY_BIN WORK_DIR
"""
import os
import shutil
import subprocess
import sys


def stub(path, word, log):
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho {word} >> '{log}'\n")
    os.chmod(path, 0o755)


def join(colony, work, env_extra, args=()):
    env = dict(os.environ, PATH=os.path.join(work, "bin") + ":" + os.environ["PATH"])
    env.pop("TERMUX_VERSION", None)
    env.update(env_extra)
    return subprocess.run(
        [colony, "join", "--insecure", "--coordinator", "127.0.0.1:9", "--join-timeout", "1",
         "--config-dir", os.path.join(work, "cfg"), *args],
        env=env, capture_output=True, text=True, timeout=60)


def calls(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return f.read().split()


def main():
    colony, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "bin"))
    log = os.path.join(work, "calls.log")
    stub(os.path.join(work, "bin", "termux-wake-lock"), "lock", log)
    stub(os.path.join(work, "bin", "termux-wake-unlock"), "unlock", log)
    failures = []

    r = join(colony, work, {"TERMUX_VERSION": "0.118.0"})
    if r.returncode != 1 or "no answer from the coordinator" not in r.stderr:
        failures.append(f"join did not give up as expected (exit {r.returncode}):\n{r.stderr}")
    if calls(log) != ["lock", "unlock"]:
        failures.append(f"under Termux: calls {calls(log)}, want ['lock', 'unlock']")
    if "wake lock taken" not in r.stderr or "wake lock released" not in r.stderr:
        failures.append(f"the lock is not reported:\n{r.stderr}")

    os.remove(log)
    join(colony, work, {})
    if calls(log) != []:
        failures.append(f"outside Termux: calls {calls(log)}, want none")
    join(colony, work, {"TERMUX_VERSION": "0.118.0"}, ["--no-wake-lock"])
    if calls(log) != []:
        failures.append(f"--no-wake-lock: calls {calls(log)}, want none")

    # termux-wake-lock missing from PATH: a warning, and the worker still runs
    os.remove(os.path.join(work, "bin", "termux-wake-lock"))
    r = join(colony, work, {"TERMUX_VERSION": "0.118.0"})
    if calls(log) != [] or "termux-wake-lock is not on PATH" not in r.stderr \
            or "no answer from the coordinator" not in r.stderr:
        failures.append(f"missing termux-wake-lock: calls {calls(log)}:\n{r.stderr}")

    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
