"""A minimal GGUF reader: the metadata key/values only (no tensor data), enough
for the harness to plan splits and physical limits before it runs anything.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (the pinned
tree's ggml/src/gguf.cpp): magic "GGUF", u32 version (2 or 3), u64 n_tensors,
u64 n_kv, then n_kv of { string key, u32 type, value }, little-endian; a
string is u64 length + bytes; an array is u32 element type + u64 count + items.
"""

import os
import struct

# GGUF value types (gguf.h, enum gguf_type)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24
_MAX_ARRAY = 1 << 28


class GgufError(ValueError):
    """The file is not a GGUF file or its header is malformed."""


class _Reader:
    def __init__(self, f, size):
        self.f = f
        self.size = size

    def read(self, n):
        b = self.f.read(n)
        if len(b) != n:
            raise GgufError("truncated GGUF header")
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise GgufError(f"GGUF string of {n} bytes is too long")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype, keep_array):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.unpack("<I")
            count = self.unpack("<Q")
            if count > _MAX_ARRAY:
                raise GgufError(f"GGUF array of {count} items is too long")
            if not keep_array:
                self.skip_array(etype, count)
                return count  # only the length is kept
            return [self.value(etype, True) for _ in range(count)]
        raise GgufError(f"unknown GGUF value type {vtype}")

    def skip_array(self, etype, count):
        if etype in _SCALARS:
            self.f.seek(struct.calcsize(_SCALARS[etype]) * count, os.SEEK_CUR)
        elif etype == _STRING:
            for _ in range(count):
                n = self.unpack("<Q")
                if n > _MAX_STRING:
                    raise GgufError("GGUF string too long")
                self.f.seek(n, os.SEEK_CUR)
        else:
            for _ in range(count):
                self.value(etype, False)


def read_metadata(path):
    """All key/values of a GGUF file as a dict; arrays are replaced by their
    length. Raises GgufError for a non-GGUF or malformed file, OSError when it
    cannot be read."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        r = _Reader(f, size)
        if r.read(4) != b"GGUF":
            raise GgufError(f"{path} is not a GGUF file (bad magic)")
        version = r.unpack("<I")
        if version not in (2, 3):
            raise GgufError(f"{path}: unsupported GGUF version {version}")
        r.unpack("<Q")  # n_tensors
        n_kv = r.unpack("<Q")
        if n_kv > 1 << 20:
            raise GgufError(f"{path}: {n_kv} key/values is implausible")
        meta = {}
        for _ in range(n_kv):
            key = r.string()
            vtype = r.unpack("<I")
            meta[key] = r.value(vtype, False)
    return meta


def model_info(path):
    """{arch, n_layer, n_embd, n_vocab, file_bytes, name} of a GGUF model.
    n_vocab is the length of tokenizer.ggml.tokens (or <arch>.vocab_size)."""
    meta = read_metadata(path)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise GgufError(f"{path}: no general.architecture")

    def need(key):
        v = meta.get(f"{arch}.{key}")
        if not isinstance(v, int) or v <= 0:
            raise GgufError(f"{path}: missing or bad {arch}.{key}")
        return v

    n_vocab = meta.get("tokenizer.ggml.tokens") or meta.get(f"{arch}.vocab_size") or 0
    return {
        "arch": arch,
        "n_layer": need("block_count"),
        "n_embd": need("embedding_length"),
        "n_vocab": int(n_vocab),
        "file_bytes": os.path.getsize(path),
        "name": meta.get("general.name", os.path.basename(path)),
        "file_type": meta.get("general.file_type"),
    }
