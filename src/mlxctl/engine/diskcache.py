"""Prompt caches on disk: what a worker prefilled survives an eviction or a restart.

One folder per model identity under `<MLXCTL_HOME>/prompt-cache/` holds one file per
cache (engine/cachefile.py: written whole or not at all, checksummed). The folder is
bounded by bytes: before a file is written, the least recently used files go until
it fits, so the folder never holds more than `max_bytes` (temp file included).

    generation thread                        writer thread
    offer(tokens, cache) ── pack ──▶ Queue ──▶ evict LRU, write, index
    fetch(prompt) ── index (memory) ── read + verify ──▶ CacheHit

`offer` never blocks: when the writer is behind by more than `_PENDING_BYTES` of
arrays, the cache is not written (counted as `dropped`). A file that fails its
checksum or does not load is deleted and is a miss. At start the folder is scanned
(headers only) and temp files left by a killed writer are removed. The index and
the counters are guarded by one lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from mlxctl.engine import cachefile, mlxlm
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.prompt_cache import CacheHit
from mlxctl.errors import InvalidInput
from mlxctl.store.local.modelinfo import read_safetensors_json

__all__ = ["DiskCache", "model_identity"]

log = logging.getLogger(__name__)

# Room a file takes beyond its arrays: the safetensors header, tokens included.
_HEADER_SLACK = 64 << 10
_TOKEN_SLACK = 8  # bytes of header per token (base64 of 4 bytes, and then some)
# Bytes of packed caches waiting for the writer; past it new ones are not written.
_PENDING_BYTES = 512 << 20


def model_identity(model_path: Path, *, adapter: Path | None, kv: tuple[int, int] | None) -> str:
    """What makes two workers' caches interchangeable: config, weights (names and
    sizes), adapter, KV quantization and the file format."""
    digest = hashlib.sha256(cachefile.FORMAT.encode())
    digest.update((model_path / "config.json").read_bytes())
    for folder in (model_path, adapter):
        if folder is None:
            continue
        for file in sorted(folder.glob("*.safetensors")):
            digest.update(f"{file.name}:{file.stat().st_size}".encode())
    digest.update(json.dumps(kv).encode())
    return digest.hexdigest()


@dataclass
class _Entry:
    path: Path
    tokens: list[int]
    size: int
    used: float
    trimmable: bool


class DiskCache:
    """A byte-bounded, least-recently-used store of prompt caches for one model."""

    def __init__(self, root: Path, identity: str, *, max_bytes: int, min_tokens: int) -> None:
        if max_bytes <= 0:
            raise ValueError("the disk cache's max_bytes must be > 0")
        self.identity = identity
        self.folder = root / identity[:24]
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[Path, _Entry] = {}
        self.hits = self.misses = self.writes = self.dropped = self.corrupt = 0
        self._scan()
        self._queue: queue.Queue[tuple[cachefile.Packed, list[int]] | None] = queue.Queue()
        self._pending = 0  # bytes queued for the writer
        # A daemon thread: a worker that dies unclosed must still exit (a cut write is safe).
        self._writer = threading.Thread(
            target=self._write_loop, name="mlxctl-diskcache", daemon=True
        )
        self._writer.start()

    # --- the generation thread ------------------------------------------------------

    def offer(self, tokens: list[int], cache: list[Any]) -> None:
        """Queue `cache` (holding `tokens`) for writing unless it is short, known or late."""
        if len(tokens) < self.min_tokens or self._holds(tokens):
            return
        try:
            packed = cachefile.pack(cache, tokens, self.identity)
        except cachefile.Unstorable as exc:
            log.debug("prompt cache not written: %s", exc)
            return
        if _room(packed, tokens) > self.max_bytes:
            return
        with self._lock:
            if self._pending and self._pending + packed.nbytes > _PENDING_BYTES:
                self.dropped += 1
                return
            self._pending += packed.nbytes
        self._queue.put((packed, list(tokens)))

    def peek(self, prompt: list[int]) -> int:
        """How many leading tokens of `prompt` the best file would serve (no I/O)."""
        entry, n = self._best(prompt)
        return n if entry is not None else 0

    def fetch(self, prompt: list[int], *, better_than: int) -> CacheHit | None:
        """A cache from disk serving more than `better_than` leading tokens, or None."""
        entry, n = self._best(prompt)
        if entry is None or n <= better_than:
            return None
        try:
            cache, tokens = cachefile.read(entry.path, self.identity)
            if tokens != entry.tokens:
                raise ValueError(f"{entry.path.name}: tokens differ from its header")
            if len(tokens) > n:
                if not mlxlm.can_trim_prompt_cache(cache):
                    raise ValueError(f"{entry.path.name}: cannot be trimmed")
                mlxlm.trim_prompt_cache(cache, len(tokens) - n)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dropping a damaged prompt cache file: %s", exc)
            self._drop(entry, corrupt=True)
            return None
        now = time.time()
        with self._lock:
            entry.used = now
            self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(entry.path, (now, now))  # recency survives a restart
        return CacheHit(cache, n)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": sum(e.size for e in self._entries.values()),
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "writes": self.writes,
                "dropped": self.dropped,
                "corrupt": self.corrupt,
            }

    def close(self) -> None:
        """Finish the queued writes, then stop the writer."""
        self._queue.put(None)
        self._writer.join()

    # --- lookups ----------------------------------------------------------------------

    def _holds(self, tokens: list[int]) -> bool:
        with self._lock:
            return any(e.tokens == tokens for e in self._entries.values())

    def _best(self, prompt: list[int]) -> tuple[_Entry | None, int]:
        """The entry serving most of `prompt` (never its last token) and how much."""
        limit = len(prompt) - 1
        best: _Entry | None = None
        served = 0
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            n = min(common_prefix(entry.tokens, prompt), limit)
            if n < len(entry.tokens) and not entry.trimmable:
                continue  # a recurrent or rotated state cannot step back
            if n > served:
                best, served = entry, n
        return best, served

    # --- the writer thread ------------------------------------------------------------

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            packed, tokens = item
            try:
                self._write(packed, tokens)
            except Exception:
                # A full disk or a bad file costs a future prefill, never a request.
                log.exception("could not write a prompt cache file")
            finally:
                with self._lock:
                    self._pending -= packed.nbytes

    def _write(self, packed: cachefile.Packed, tokens: list[int]) -> None:
        self._make_room(_room(packed, tokens))
        stem = hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:32]
        path = cachefile.write(packed, self.folder, stem)
        size = path.stat().st_size
        trimmable = packed.metadata["trimmable"] == "true"
        with self._lock:
            self._entries[path] = _Entry(path, tokens, size, time.time(), trimmable)
            self.writes += 1
            covered = [
                e
                for e in self._entries.values()
                if trimmable
                and e.path != path
                and len(e.tokens) < len(tokens)
                and tokens[: len(e.tokens)] == e.tokens
            ]
        for entry in covered:  # a longer trimmable cache serves every prefix of it
            self._drop(entry)

    def _make_room(self, need: int) -> None:
        """Delete least recently used files until `need` more bytes fit the bound."""
        while True:
            with self._lock:
                used = sum(e.size for e in self._entries.values())
                if used + need <= self.max_bytes or not self._entries:
                    return
                oldest = min(self._entries.values(), key=lambda e: e.used)
            self._drop(oldest)

    def _drop(self, entry: _Entry, *, corrupt: bool = False) -> None:
        with self._lock:
            if self._entries.pop(entry.path, None) is None:
                return
            if corrupt:
                self.corrupt += 1
        entry.path.unlink(missing_ok=True)

    # --- start ------------------------------------------------------------------------

    def _scan(self) -> None:
        """Index the folder from file headers; remove what a killed writer left."""
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith(".tmp.safetensors"):
                if not _alive(name):
                    path.unlink(missing_ok=True)
                continue
            if not name.endswith(".safetensors"):
                continue
            try:
                metadata = read_safetensors_json(path).get("__metadata__") or {}
                if metadata.get("format") != cachefile.FORMAT:
                    raise ValueError("not a prompt cache file")
                tokens = cachefile.tokens_of(metadata)
                stat = path.stat()
            except (OSError, ValueError, KeyError, InvalidInput) as exc:
                log.warning("removing unreadable prompt cache file %s: %s", name, exc)
                path.unlink(missing_ok=True)
                continue
            trimmable = metadata.get("trimmable") == "true"
            self._entries[path] = _Entry(path, tokens, stat.st_size, stat.st_mtime, trimmable)
        # A smaller bound than last time: trim now.
        self._make_room(0)


def _room(packed: cachefile.Packed, tokens: list[int]) -> int:
    """The most bytes the file of `packed` can take (its arrays plus the header)."""
    return packed.nbytes + _HEADER_SLACK + _TOKEN_SLACK * len(tokens)


def _alive(temp_name: str) -> bool:
    """Whether the writer that owns a temp file (`.<stem>.<pid>.tmp.safetensors`) runs."""
    try:
        pid = int(temp_name.split(".")[2])
    except (IndexError, ValueError):
        return False
    return pid != os.getpid() and psutil.pid_exists(pid)
