"""Which KV caches the engine keeps between requests, and for how long.

Every finished sequence leaves its KV cache here, keyed by the tokens it holds
(prompt + generated). A new request takes a private copy of the cache sharing
the longest prefix with its prompt, so a second chat turn or a shared system
prompt skips that much prefill. The store is mlx-lm's `LRUPromptCache`, bounded
two ways: at most `max_entries` caches and at most `max_bytes` of KV arrays; the
least recently used entry goes first (a hit counts as a use). Storing a cache
drops stored caches whose keys are prefixes of it, since it covers them.

Runs on the generation thread only; `stats()` returns plain data for others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from mlxctl.engine.mlxlm import PromptCacheStore, compact_cache

__all__ = ["CacheHit", "PromptCache"]


@dataclass(frozen=True)
class CacheHit:
    """A cache to start from (None: start empty) holding the first `tokens` tokens."""

    cache: list[Any] | None
    tokens: int


_MISS = CacheHit(None, 0)


class PromptCache:
    """Prompt-cache policy; `max_entries` 0 (or `max_bytes` 0) turns it off."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("prompt cache bounds must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._store = PromptCacheStore(max_entries, max_bytes)
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def fetch(self, prompt: list[int]) -> CacheHit:
        """The longest reusable prefix of `prompt`; always leaves at least one token to run.

        The last prompt token is never served from cache: generation needs its logits.
        """
        if not self.enabled or len(prompt) < 2:
            return _MISS
        cache, reused = self._store.fetch(prompt)
        if cache is None or reused == 0:
            self.misses += 1
            return _MISS
        self.hits += 1
        return CacheHit(cache, reused)

    def peek(self, prompt: list[int]) -> int:
        """How many leading tokens of `prompt` `fetch` would serve (0 when off)."""
        if not self.enabled or len(prompt) < 2:
            return 0
        return self._store.peek(prompt)

    def store(self, tokens: list[int], cache: list[Any]) -> None:
        """Keep `cache` (holding exactly `tokens`), evicting to stay within bounds."""
        if not self.enabled or not tokens:
            return
        compact_cache(cache)
        # Materialize now: the extracted arrays are lazy views that would pin
        # the whole batch's KV buffer until first use.
        mx.async_eval([c.state for c in cache])  # type: ignore[no-untyped-call]
        self._store.insert(tokens, cache)

    def clear(self) -> None:
        self._store = PromptCacheStore(self.max_entries, self.max_bytes)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._store),
            "bytes": self._store.nbytes,
            "hits": self.hits,
            "misses": self.misses,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
        }
