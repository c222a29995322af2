"""One prompt cache as one file: what the disk cache writes and reads back.

A file is safetensors: every layer's state arrays, and in the metadata the format,
the model identity, the tokens the cache holds, each layer's cache class and the
state's plain values (offsets, sizes). It is written to a temp name, fsynced and
renamed, so a reader sees a whole file or none; the CRC-32 of the bytes is part of
the final name and is checked on every read, so a torn or rotted file is refused.

`pack` runs on the generation thread (it touches MLX arrays: materializes them),
`write` may run on any thread (it only saves evaluated arrays), `read` on the
generation thread. Only the cache classes named in `_CLASSES` are stored or loaded.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from mlxctl.engine import mlxlm
from mlxctl.engine.kvquant import QuantizedKV
from mlxctl.store.content.blobs import fsync_dir

__all__ = ["FORMAT", "Packed", "checksum", "pack", "read", "tokens_of", "write"]

FORMAT = "mlxctl-prompt-cache/1"
_CLASSES: dict[str, type[Any]] = {
    "KVCache": mlxlm.KVCache,
    "QuantizedKV": QuantizedKV,
    "RotatingKVCache": mlxlm.RotatingKVCache,
    "ArraysCache": mlxlm.ArraysCache,
}
_CHUNK = 1 << 20


class Unstorable(ValueError):
    """A cache holding a layer kind this format does not know."""


@dataclass(frozen=True)
class Packed:
    """A cache ready to write: evaluated arrays and the metadata that rebuilds it."""

    arrays: dict[str, mx.array]
    metadata: dict[str, str]
    nbytes: int


def pack(cache: list[Any], tokens: list[int], identity: str) -> Packed:
    """Flatten `cache` (holding `tokens`) into arrays + metadata; raises Unstorable."""
    classes = [type(c).__name__ for c in cache]
    unknown = sorted({name for name in classes if name not in _CLASSES})
    if unknown:
        raise Unstorable(f"cannot store cache layers of kind {', '.join(unknown)}")
    arrays: dict[str, mx.array] = {}
    plain: dict[str, Any] = {}
    flat: Any = tree_flatten([c.state for c in cache])
    for path, value in flat:
        if isinstance(value, mx.array):
            arrays[path] = value
        elif value is None or isinstance(value, int | float | bool):
            plain[path] = value
        else:
            raise Unstorable(f"cannot store a cache state value of type {type(value).__name__}")
    mx.eval(list(arrays.values()))
    metadata = {
        "format": FORMAT,
        "model": identity,
        "tokens": _encode_tokens(tokens),
        "classes": json.dumps(classes),
        "plain": json.dumps(plain),
        "trimmable": json.dumps(mlxlm.can_trim_prompt_cache(cache)),
    }
    return Packed(arrays, metadata, sum(a.nbytes for a in arrays.values()))


def write(packed: Packed, folder: Path, stem: str) -> Path:
    """Write `packed` as `<stem>-<crc32>.safetensors` in `folder`, whole or not at all."""
    temp = folder / f".{stem}.{os.getpid()}.tmp.safetensors"
    try:
        mx.save_safetensors(str(temp), packed.arrays, packed.metadata)
        crc = checksum(temp)
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        final = folder / f"{stem}-{crc:08x}.safetensors"
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(folder)
    return final


def read(path: Path, identity: str) -> tuple[list[Any], list[int]]:
    """The cache in `path` and its tokens; ValueError if the file is not whole and ours."""
    want = path.stem.rsplit("-", 1)[-1]
    if checksum(path) != int(want, 16):
        raise ValueError(f"{path.name}: checksum mismatch")
    loaded: Any = mx.load(str(path), return_metadata=True)
    arrays: dict[str, mx.array] = loaded[0]
    metadata: dict[str, str] = loaded[1]
    if metadata.get("format") != FORMAT or metadata.get("model") != identity:
        raise ValueError(f"{path.name}: not a prompt cache of this model")
    classes = json.loads(metadata["classes"])
    state: dict[str, Any] = {**arrays, **json.loads(metadata["plain"])}
    states = tree_unflatten(sorted(state.items(), key=lambda kv: _path_key(kv[0])))
    cache = []
    for name, layer in zip(classes, states, strict=True):
        cls = _CLASSES.get(name)
        if cls is None:
            raise ValueError(f"{path.name}: unknown cache layer kind {name!r}")
        cache.append(cls.from_state(layer))
    return cache, tokens_of(metadata)


def tokens_of(metadata: dict[str, str]) -> list[int]:
    raw = base64.b64decode(metadata["tokens"])
    return list(memoryview(raw).cast("I"))


def checksum(path: Path) -> int:
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _encode_tokens(tokens: list[int]) -> str:
    import array

    return base64.b64encode(array.array("I", tokens).tobytes()).decode("ascii")


def _path_key(path: str) -> list[int | str]:
    # tree_unflatten wants list indices in order: "10" after "9".
    return [int(p) if p.isdigit() else p for p in path.split(".")]
