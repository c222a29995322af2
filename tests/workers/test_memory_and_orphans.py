"""Measured memory readings, and cleaning up workers a dead daemon left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlxctl.workers import memory, orphans
from mlxctl.workers.base import MemoryReading
from mlxctl.workers.process import free_port

FAKE = [sys.executable, "-m", "mlxctl.workers.fake"]


@pytest.fixture
def fake_worker() -> object:
    port = free_port()
    proc = subprocess.Popen(
        [*FAKE, "m", "--port", str(port), "--rss-mb", "64"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health").json()["status"] == "ok":
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield proc, base
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_reading_combines_rss_and_mlx_counters(fake_worker: tuple) -> None:  # type: ignore[type-arg]
    proc, base = fake_worker
    async with httpx.AsyncClient() as client:
        reading = await memory.measure(client, proc.pid, base)
        assert reading.rss is not None and reading.rss > 64 << 20
        assert reading.mlx_active == 64 << 20 and reading.mlx_cache == 0
        assert reading.total == reading.rss
        # No answer is no reading, never an error.
        assert await memory.fetch_stats(client, "http://127.0.0.1:9") is None


def test_reading_without_a_process_or_stats() -> None:
    assert memory.rss(None) is None
    empty = memory.reading(None, None)
    assert empty == MemoryReading() and empty.total is None
    mlx_only = memory.reading(None, {"memory": {"active": 5, "cache": 3, "peak": 9}})
    assert mlx_only.total == 8 and mlx_only.mlx_peak == 9


def test_reap_kills_workers_of_a_dead_daemon_only(tmp_path: Path, fake_worker: tuple) -> None:  # type: ignore[type-arg]
    proc, _ = fake_worker
    directory = orphans.run_dir(tmp_path)
    orphans.record(directory, "m", proc.pid, 1234)
    data = json.loads((directory / "m.json").read_text())
    assert data == {"slug": "m", "pid": proc.pid, "port": 1234, "daemon_pid": os.getpid()}
    # Its daemon (this process) is alive but is the one reaping: a previous life, so reap.
    other = directory / "other.json"
    other.write_text(json.dumps({"slug": "other", "pid": os.getpid(), "daemon_pid": os.getppid()}))
    killed = orphans.reap(directory)
    assert killed == [proc.pid]
    assert proc.wait(timeout=5) < 0
    assert not (directory / "m.json").exists()
    assert other.exists()  # a live daemon's worker is left alone


def test_reap_never_kills_a_process_that_is_not_a_worker(tmp_path: Path) -> None:
    directory = orphans.run_dir(tmp_path)
    orphans.record(directory, "m", os.getpid(), 1)  # a reused pid: this very test process
    json_path = directory / "m.json"
    json_path.write_text(json.dumps({"slug": "m", "pid": os.getpid(), "daemon_pid": 999999}))
    assert orphans.reap(directory) == []
    assert not json_path.exists()
