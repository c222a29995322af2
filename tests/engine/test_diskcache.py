"""The prompt cache on disk: its byte bound, and files a kill -9 cut short (engine/diskcache.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxctl.engine import mlxlm
from mlxctl.engine.diskcache import DiskCache

IDENTITY = "f" * 64


def _cache(tokens: int, width: int = 32) -> list[Any]:
    """Two KV layers holding `tokens` random tokens (what a real model's cache holds)."""
    layers = []
    for _ in range(2):
        layer = mlxlm.KVCache()
        layer.update_and_fetch(
            mx.random.normal((1, 2, tokens, width)), mx.random.normal((1, 2, tokens, width))
        )
        layers.append(layer)
    return layers


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):  # evicted or renamed while we look
            total += path.stat().st_size
    return total


def test_the_folder_never_exceeds_its_bound_and_evicts_the_least_recently_used(
    tmp_path: Path,
) -> None:
    bound = 3 << 20  # room for two 1.1 MB entries, never three
    disk = DiskCache(tmp_path, IDENTITY, max_bytes=bound, min_tokens=8)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _folder_bytes(disk.folder))

    watcher = threading.Thread(target=watch)
    watcher.start()
    prompts = [[k] * 3 + list(range(1024)) for k in range(6)]
    try:
        for i, prompt in enumerate(prompts):
            disk.offer(prompt, _cache(len(prompt)))
            while disk.stats()["writes"] < i + 1 and disk.stats()["dropped"] == 0:
                time.sleep(0.01)
            if i == 1:  # use the older of the two: the next write evicts the other
                assert disk.fetch(prompts[0] + [7], better_than=0) is not None
            if i == 2:
                assert disk.peek(prompts[1] + [7]) == 0 and disk.peek(prompts[0] + [7]) > 0
    finally:
        disk.close()
        stop.set()
        watcher.join()
    stats = disk.stats()
    assert stats["writes"] == 6 and stats["dropped"] == 0
    assert 0 < peak <= bound and stats["bytes"] <= bound
    reopened = DiskCache(tmp_path, IDENTITY, max_bytes=bound, min_tokens=8)
    try:
        assert reopened.stats()["entries"] == 2
        assert reopened.peek(prompts[5] + [1]) == len(prompts[5])
        assert reopened.peek(prompts[4] + [1]) == len(prompts[4])
    finally:
        reopened.close()


_WRITER = """
import sys, time, mlx.core as mx
from pathlib import Path
from mlxctl.engine import mlxlm
from mlxctl.engine.diskcache import DiskCache
disk = DiskCache(Path(sys.argv[1]), "f" * 64, max_bytes=1 << 30, min_tokens=1)
layer = mlxlm.KVCache()
layer.update_and_fetch(mx.random.normal((1, 8, 4096, 128)), mx.random.normal((1, 8, 4096, 128)))
print("ready", flush=True)
for i in range(10**6):
    disk.offer([i, *range(4096)], [layer])
    time.sleep(0.005)
"""


def test_a_writer_killed_mid_write_leaves_nothing_a_reader_would_serve(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        folder = tmp_path / IDENTITY[:24]
        deadline = time.monotonic() + 60
        # Kill it while a temp file is being written, after at least one file is whole.
        while time.monotonic() < deadline:
            names = [p.name for p in folder.iterdir()]
            if any(n.endswith(".tmp.safetensors") for n in names) and any(
                not n.startswith(".") for n in names
            ):
                break
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert any(p.name.endswith(".tmp.safetensors") for p in folder.iterdir())
    disk = DiskCache(tmp_path, IDENTITY, max_bytes=1 << 30, min_tokens=1)
    try:
        assert not any(p.name.startswith(".") for p in folder.iterdir())  # temp files gone
        whole = disk.stats()["entries"]
        assert whole >= 1
        for index in range(whole):
            hit = disk.fetch([index, *range(4096), 1], better_than=0)
            assert hit is not None and hit.tokens == 4097
        # A file damaged after it was written is refused by its checksum, then removed.
        for victim in folder.iterdir():
            with victim.open("r+b") as handle:
                handle.seek(victim.stat().st_size // 2)
                byte = handle.read(1)
                handle.seek(-1, os.SEEK_CUR)
                handle.write(bytes([byte[0] ^ 0xFF]))
        assert disk.fetch([0, *range(4096), 1], better_than=0) is None
        assert disk.stats()["corrupt"] == 1 and disk.stats()["entries"] == whole - 1
    finally:
        disk.close()
