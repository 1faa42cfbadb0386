"""The requests and the fault schedule of a chaos run: pure functions of the
seed (and the prompt text), so a run replays exactly from --seed.

A request is a dict: id, prompt, max_tokens, temperature (0 = greedy),
seed (None when greedy), stream. A fault is a dict:

  index, kind, target, phase, delay_ms, duration_s, restart_after_s,
  target2 (double-kill only), requests (the ids sent in its round)

Kinds (what the harness does; docs/reliability.md has the table):
  kill          SIGKILL the target; restart it (same config dir) restart_after_s later
  stop          SIGSTOP the target for duration_s, then SIGCONT
  kill-restart  SIGKILL the target and restart it within 1 s
  double-kill   SIGKILL the target, then target2 while the first is being recovered
  cut           (netlab) cut coordinator <-> target for duration_s
  cut-workers   (netlab) cut the first worker stage <-> the last for duration_s
  oneway-cut    (netlab) cut coordinator -> target only, for duration_s
  flap          (netlab) cut coordinator <-> target for 1.5 s
  loss          (netlab) 10% loss on every link for duration_s (60 s)
  none          nothing (--no-faults: one round of every request, which checks
                that a second pass reproduces the reference under another batch mix)

Targets are positions, resolved against the running plan when the fault's
round starts: "first" (the worker on stage 1), "middle" (the worker on stage
S // 2: with 3 stages the same worker as "first", the coordinator being stage
0), "last" (the last stage: it samples), "spare" (a worker holding no stage).
The coordinator is never a target (decision 6: it owns the token history).
Phases: "prefill" (injected delay_ms after the round's first request is sent,
before any token came back), "decode" (once a streamed request of the round
has received a few tokens), "start" (the 60 s of loss: when the first of the
round's requests, spread over the loss, is sent).
"""

import random
import re

KILLS = ("kill", "stop", "kill-restart", "double-kill")
NETLAB = ("cut", "cut-workers", "oneway-cut", "flap", "loss")
KINDS = KILLS + NETLAB
TARGETS = ("first", "middle", "last", "spare")
WORKER_TARGETS = ("first", "middle", "last")


def prompt_pieces(text, n, rng, min_chars=120, max_chars=360):
    """n prompts cut from text at seeded offsets: whitespace collapsed, starting
    and ending at word boundaries, min_chars..max_chars long."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) < max_chars * 2:
        raise ValueError(f"need at least {max_chars * 2} characters of prompt text, got {len(flat)}")
    out = []
    for _ in range(n):
        length = rng.randint(min_chars, max_chars)
        start = rng.randrange(0, len(flat) - length - 1)
        piece = flat[start:start + length]
        # drop the partial words at both ends
        first_space, last_space = piece.find(" "), piece.rfind(" ")
        if 0 <= first_space < last_space:
            piece = piece[first_space + 1:last_space]
        out.append(piece.strip() or flat[:min_chars])
    return out


def make_requests(seed, n, text, min_tokens=40, max_tokens=120):
    """n requests: half greedy, half temperature 0.8 with a seed; half
    streamed; max_tokens in [min_tokens, max_tokens] (sent with ignore_eos)."""
    rng = random.Random(f"requests:{seed}")
    prompts = prompt_pieces(text, n, rng)
    reqs = []
    for i, prompt in enumerate(prompts):
        greedy = rng.random() < 0.5
        reqs.append({
            "id": i,
            "prompt": prompt,
            "max_tokens": rng.randint(min_tokens, max_tokens),
            "temperature": 0.0 if greedy else 0.8,
            "seed": None if greedy else rng.randrange(1, 2 ** 31),
            "stream": rng.random() < 0.5,
        })
    return reqs


def _fault(kind, rng, target=None, phase=None, **kw):
    f = {
        "kind": kind,
        "target": target or rng.choice(WORKER_TARGETS),
        "phase": phase or rng.choice(("prefill", "decode")),
        "delay_ms": rng.randint(0, 30),  # after the first request is sent (prefill only)
        "duration_s": 0.0,
        "restart_after_s": round(rng.uniform(2.0, 4.0), 2),
        "target2": None,
    }
    f.update(kw)
    return f


def full_faults(seed):
    """The full schedule: every kill of {first, middle, last} x {prefill,
    decode}, SIGSTOP 10 s, kill + restart within 1 s, a second kill during a
    recovery, and the link faults; seeded order and parameters."""
    rng = random.Random(f"faults:{seed}")
    faults = [_fault("kill", rng, t, p) for t in WORKER_TARGETS for p in ("prefill", "decode")]
    faults.append(_fault("stop", rng, phase="decode", duration_s=10.0))
    faults.append(_fault("kill-restart", rng, restart_after_s=round(rng.uniform(0.2, 1.0), 2)))
    first = rng.choice(WORKER_TARGETS)
    # the second: the spare (which is likely taking over the first's range) or the other stage
    second = rng.choice(("spare", "last" if first != "last" else "first"))
    faults.append(_fault("double-kill", rng, first, "decode", target2=second))
    # the link faults are always drawn, so that a run with and without --netlab
    # gets the same kills; without the lab they are listed as not run
    faults.append(_fault("cut", rng, phase="decode", duration_s=round(rng.uniform(4.0, 6.0), 1)))
    faults.append(_fault("cut-workers", rng, target="first", phase="decode",
                         duration_s=round(rng.uniform(4.0, 6.0), 1)))
    faults.append(_fault("oneway-cut", rng, phase="decode", duration_s=round(rng.uniform(4.0, 6.0), 1)))
    faults.append(_fault("flap", rng, phase="decode", duration_s=1.5))
    faults.append(_fault("loss", rng, target="all", phase="start", duration_s=60.0))
    rng.shuffle(faults)
    return faults


def short_faults(seed):
    """The CI schedule: kill the middle worker in decode (the spare present),
    SIGSTOP/SIGCONT 3 s, kill + restart the last worker within 1 s."""
    rng = random.Random(f"short:{seed}")
    return [
        _fault("kill", rng, "middle", "decode"),
        _fault("stop", rng, phase="decode", duration_s=3.0),
        _fault("kill-restart", rng, "last", "decode", restart_after_s=round(rng.uniform(0.2, 1.0), 2)),
    ]


def assign_requests(faults, request_ids):
    """Numbers the faults from 1 and splits the request ids over the rounds
    of the faults that run (no "not_run" reason), in order, the first rounds
    taking the remainder. Returns new fault dicts with "index" and "requests"."""
    runnable = sum(1 for f in faults if not f.get("not_run"))
    ids = list(request_ids)
    per, extra = divmod(len(ids), runnable) if runnable else (0, 0)
    out, pos, k = [], 0, 0
    for i, f in enumerate(faults):
        g = dict(f, index=i + 1, requests=[])
        if not f.get("not_run"):
            take = per + (1 if k < extra else 0)
            g["requests"] = ids[pos:pos + take]
            pos += take
            k += 1
        out.append(g)
    return out


def build(seed, n_requests, text, short=False, netlab=False, only=None, no_faults=False):
    """(requests, faults) of a run. only: a set of kinds to keep (None: all).
    Without netlab the link faults stay in the list with a "not_run" reason."""
    requests = make_requests(seed, n_requests, text)
    if no_faults:
        faults = [_fault("none", random.Random(0), target="-", phase="decode")]
    else:
        faults = short_faults(seed) if short else full_faults(seed)
    if only is not None:
        faults = [f for f in faults if f["kind"] in only]
    if not netlab:
        faults = [dict(f, not_run="needs --netlab (network namespaces, root)") if f["kind"] in NETLAB else f
                  for f in faults]
    return requests, assign_requests(faults, [r["id"] for r in requests])
