"""The physical limit of a pipeline on a link profile: what no implementation
can beat, given the single-node compute time and the links.

Decode of one sequence, S stages in a ring (stage 0 embeds, the last stage
samples, the token id goes back to stage 0):

  t_token = t_compute + (S - 1) * (d + wire(n_embd * 2) / R) + (d + wire(4) / R)

t_compute: one node's time per decode step for the whole model (the split
only moves work around); d: one-way delay of a link; R: its rate; the hidden
state travels as f16 (n_embd * 2 bytes per token) and the token id as 4
bytes. wire(b) is b plus Ethernet + IPv4 + TCP framing: 66 bytes (14 + 20 +
32 with timestamps) per segment of at most 1448 payload bytes, which is what
colony-netem's rate counts (docs/netlab.md, link model step 3). S = 1: no link.

Prefill of an n-token prompt (TTFT), without splitting the prompt into
pipelined ubatches: t_prefill + (S - 1) * (d + wire(n * n_embd * 2) / R) + (d + wire(4) / R).

Jitter averages out (mean delay d); loss and retransmissions are ignored, so
the limit is optimistic on wifi-poor.
"""

import math

MSS = 1448          # TCP payload per segment with timestamps, MTU 1500
FRAME_OVERHEAD = 66  # Ethernet 14 + IPv4 20 + TCP 32 (with timestamps)


def wire_bytes(payload):
    """Bytes on the link for a TCP payload (framing included); 0 for 0."""
    if payload <= 0:
        return 0
    return payload + math.ceil(payload / MSS) * FRAME_OVERHEAD


def transfer_ms(payload, rate_mbit):
    """Serialization time (ms) of payload bytes at rate_mbit (0 = unlimited -> 0)."""
    if not rate_mbit:
        return 0.0
    return wire_bytes(payload) * 8 / (rate_mbit * 1e6) * 1e3


def hop_ms(payload, delay_ms, rate_mbit):
    """One hop: one-way delay plus transfer time (ms)."""
    return delay_ms + transfer_ms(payload, rate_mbit)


def decode_limit_ms(compute_ms, stages, n_embd, delay_ms, rate_mbit, act_bytes=2):
    """Time per decode token (ms) of an S-stage pipeline; see the module doc.
    Returns a dict with the total and its parts."""
    if stages < 1:
        raise ValueError("stages must be >= 1")
    if stages == 1:
        return {"total_ms": compute_ms, "compute_ms": compute_ms, "delay_ms": 0.0, "transfer_ms": 0.0, "hops": 0}
    hidden = n_embd * act_bytes
    n_hidden_hops = stages - 1
    delay = stages * delay_ms
    transfer = n_hidden_hops * transfer_ms(hidden, rate_mbit) + transfer_ms(4, rate_mbit)
    return {"total_ms": compute_ms + delay + transfer, "compute_ms": compute_ms, "delay_ms": delay,
            "transfer_ms": transfer, "hops": stages}


def ttft_limit_ms(prefill_ms, stages, n_embd, n_prompt, delay_ms, rate_mbit, act_bytes=2):
    """TTFT (ms) of an n_prompt-token prompt through S stages, unpipelined."""
    if stages == 1:
        return prefill_ms
    hidden = n_prompt * n_embd * act_bytes
    return (prefill_ms + (stages - 1) * hop_ms(hidden, delay_ms, rate_mbit) + hop_ms(4, delay_ms, rate_mbit))
