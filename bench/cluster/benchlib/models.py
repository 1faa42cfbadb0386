"""Model specs for the harness: a GGUF path, or a synthetic real-shape model
"synth:PRESET:TYPE[:SEED]" written once by `colony synth` and cached under
~/.cache/colony/models/synth/PRESET-TYPE-sSEED.gguf (COLONY_BENCH_MODEL_CACHE
overrides the folder). The same options give a byte-identical file, so the
cache key is the options."""

import os

from . import proc

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "colony", "models", "synth")


class ModelError(ValueError):
    """A model spec that cannot be resolved."""


def parse_spec(spec):
    """("path", PATH) or ("synth", (preset, type, seed)) for a spec string."""
    if spec.startswith("synth:"):
        parts = spec.split(":")
        if len(parts) not in (3, 4) or not parts[1] or not parts[2]:
            raise ModelError(f"synthetic model spec is synth:PRESET:TYPE[:SEED], got '{spec}'")
        seed = 1
        if len(parts) == 4:
            try:
                seed = int(parts[3])
            except ValueError as e:
                raise ModelError(f"bad seed in '{spec}'") from e
        return "synth", (parts[1], parts[2].upper(), seed)
    return "path", spec


def cache_path(preset, qtype, seed, cache_dir=None):
    d = cache_dir or os.environ.get("COLONY_BENCH_MODEL_CACHE") or DEFAULT_CACHE
    return os.path.join(d, f"{preset}-{qtype.lower()}-s{seed}.gguf")


def short_name(spec):
    """A label for tables: "stories260K-q8_0", "llama-3.2-1b Q4_K_M"."""
    kind, v = parse_spec(spec)
    if kind == "synth":
        preset, qtype, seed = v
        return f"{preset} {qtype}" + (f" s{seed}" if seed != 1 else "")
    base = os.path.basename(v)
    return base[:-5] if base.endswith(".gguf") else base


def resolve(spec, colony_bin, log=print, timeout=3600):
    """The GGUF path of a spec; writes a synthetic model first when it is not
    cached (atomically: a temp file renamed into place). Raises ModelError."""
    kind, v = parse_spec(spec)
    if kind == "path":
        if not os.path.isfile(v):
            raise ModelError(f"model file not found: {v}")
        return os.path.abspath(v)
    preset, qtype, seed = v
    path = cache_path(preset, qtype, seed)
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + f".tmp{os.getpid()}"
    cmd = [colony_bin, "synth", "--preset", preset, "--type", qtype, "--seed", seed, "-o", tmp, "-q"]
    log(f"writing synthetic model {preset} {qtype} seed {seed} -> {path} (once; takes minutes)")
    r = proc.run(cmd, timeout)
    if r.rc != 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ModelError(f"colony synth failed ({r.rc}): {r.stderr.strip()[-500:]}")
    os.rename(tmp, path)
    return path
