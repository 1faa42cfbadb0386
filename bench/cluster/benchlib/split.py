"""Layer splits: how many transformer blocks each stage runs, and the same
split written as colony's --split ranges and as llama.cpp's -ngl/--tensor-split.

Stage 0 is the coordinator's host (lab host 1): for colony it embeds the
tokens and runs the first range; for llama.cpp RPC it is the llama-bench /
probe process, whose CPU runs the layers that are not offloaded. Stages
1..S-1 are lab hosts 2..S (colony workers, or ggml-rpc-servers).
"""


class SplitError(ValueError):
    """A split that does not fit the model or is malformed."""


def even_split(n_layer, stages):
    """Counts per stage that differ by at most one; the first stages take the
    remainder (the last stage also runs the LM head). [5 layers, 2 stages] -> [3, 2]."""
    if stages < 1:
        raise SplitError("stages must be >= 1")
    if n_layer < stages:
        raise SplitError(f"{stages} stages need at least {stages} layers, the model has {n_layer}")
    base, extra = divmod(n_layer, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def parse_split(spec, n_layer, stages):
    """Layer counts per stage from a spec: "even" (or empty), counts "3,2", or
    colony-style ranges "0:3,3:5" (contiguous from 0 to n_layer). Raises
    SplitError when the stage count or the total does not match the model."""
    if not spec or spec == "even":
        return even_split(n_layer, stages)
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != stages:
        raise SplitError(f"split '{spec}' has {len(parts)} stages, expected {stages}")
    counts = []
    if ":" in spec:
        expect = 0
        for p in parts:
            a, _, b = p.partition(":")
            try:
                first, last = int(a), int(b)
            except ValueError as e:
                raise SplitError(f"bad range '{p}' in split '{spec}'") from e
            if first != expect or last <= first:
                raise SplitError(f"split '{spec}' must be contiguous non-empty ranges from 0")
            counts.append(last - first)
            expect = last
    else:
        try:
            counts = [int(p) for p in parts]
        except ValueError as e:
            raise SplitError(f"bad layer count in split '{spec}'") from e
    if any(c < 0 for c in counts) or sum(counts) != n_layer:
        raise SplitError(f"split '{spec}' covers {sum(counts)} layers, the model has {n_layer}")
    if any(c == 0 for c in counts[1:]):
        raise SplitError(f"split '{spec}': only stage 0 may have no layers")
    return counts


def colony_ranges(counts):
    """colony's --split RANGES: [3, 2] -> "0:3,3:5"."""
    out, first = [], 0
    for c in counts:
        out.append(f"{first}:{first + c}")
        first += c
    return ",".join(out)


def rpc_args(counts, n_layer):
    """llama.cpp RPC flags for the split: (ngl, tensor_split) with the local
    CPU running counts[0] layers and RPC device i running counts[i+1].

    llama.cpp (src/llama-model.cpp, load_tensors) offloads the LAST ngl of the
    n_layer + 1 "layers" (blocks, then the output layer): i_gpu_start =
    n_layer + 1 - ngl, and a block j = il - i_gpu_start goes to the first
    device whose cumulative split fraction exceeds j / ngl. So ngl =
    n_layer + 1 - counts[0], and the last device's share counts the output
    layer too (the LM head sits on the last host, as on colony's last stage).
    Integer shares keep the fractions exact. Returns (0, "") for one stage."""
    if sum(counts) != n_layer:
        raise SplitError("counts do not cover the model")
    if len(counts) == 1:
        return 0, ""
    shares = list(counts[1:])
    shares[-1] += 1
    return n_layer + 1 - counts[0], "/".join(str(s) for s in shares)


def rpc_layer_owner(counts, n_layer):
    """The device index that llama.cpp assigns to each of the n_layer + 1
    layers for rpc_args(counts) (-1 = local CPU), by llama.cpp's rule; used to
    check rpc_args. The last entry is the output layer."""
    ngl, ts = rpc_args(counts, n_layer)
    if ngl == 0:
        return [-1] * (n_layer + 1)
    shares = [float(s) for s in ts.split("/")]
    total = sum(shares)
    cum, acc = [], 0.0
    for s in shares:
        acc += s
        cum.append(acc / total)
    i_gpu_start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    owners = []
    for il in range(n_layer + 1):
        if il < i_gpu_start or il - i_gpu_start >= act:
            owners.append(-1)
            continue
        x = (il - i_gpu_start) / act
        owners.append(next(i for i, c in enumerate(cum) if c > x))
    return owners
