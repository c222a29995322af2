"""Where along a prompt to keep a copy of the cache, for models whose cache cannot step back.

Prefix reuse trims a stored cache to the prefix a new prompt shares. A hybrid model's
recurrent layers (Gated DeltaNet's ArraysCache) cannot be trimmed at all, and a
sliding-window layer (RotatingKVCache) not once it has wrapped; so for those models
the engine keeps state checkpoints while it prefills: one every `every` tokens and
one just before the prompt's last token (the prefix a next turn or a repeat shares).
A later prompt resumes from the longest checkpoint it starts with.
"""

from __future__ import annotations

from typing import Any

from mlxctl.engine import mlxlm
from mlxctl.engine.kvquant import QuantizedKV

__all__ = ["needs_checkpoints", "positions"]

_MIN_SPACING = 16  # a checkpoint this close to the last one saves less than it costs


def needs_checkpoints(cache: list[Any]) -> bool:
    """Whether a fresh cache of this model has layers a shared prefix cannot be cut from."""
    return not all(type(c) in (mlxlm.KVCache, QuantizedKV) for c in cache)


def positions(length: int, cached: int, every: int) -> list[int]:
    """Absolute prompt positions to checkpoint at, after `cached` tokens already held.

    The position `length - 1` is not listed: the engine always splits the last prompt
    token off (it is fed by the first decoding step), and checkpoints there too.
    """
    if every <= 0:
        return []
    start = (cached // every + 1) * every
    end = length - 1 - _MIN_SPACING
    return [p for p in range(start, end + 1, every) if p - cached >= _MIN_SPACING]
