"""Measured memory readings, and pid files: cleaning up what a dead daemon left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from mlxctl.supervision import memory, pidfile
from mlxctl.supervision.base import MemoryReading
from mlxctl.supervision.process import free_port

FAKE = [sys.executable, "-m", "mlxctl.supervision.fake"]


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


def _record(pid: int, name: str = "m", daemon_pid: int | None = None) -> pidfile.PidRecord:
    argv0 = psutil.Process(pid).cmdline()[0]
    created = pidfile.create_time(pid)
    assert created is not None
    return pidfile.PidRecord(name, pid, argv0, created, port=1234, daemon_pid=daemon_pid)


def test_reap_kills_workers_of_a_dead_daemon_only(tmp_path: Path, fake_worker: tuple) -> None:  # type: ignore[type-arg]
    proc, _ = fake_worker
    directory = pidfile.run_dir(tmp_path)
    written = pidfile.write(directory, _record(proc.pid, daemon_pid=os.getpid()))
    assert written.stat().st_mode & 0o777 == 0o600  # it holds the nonce
    data = json.loads(written.read_text())
    assert data["pid"] == proc.pid and data["daemon_pid"] == os.getpid()
    assert data["argv0"] == sys.executable and data["created"] > 0
    # A live daemon's worker is left alone (here: this test's parent process).
    pidfile.write(directory, _record(os.getpid(), "other", daemon_pid=os.getppid()))
    # Its daemon (this process) is alive but is the one reaping: a previous life, so reap.
    killed = pidfile.reap(directory)
    assert killed == [proc.pid]
    assert proc.wait(timeout=5) < 0
    assert not (directory / "m.json").exists()
    assert (directory / "other.json").exists()


def test_reap_never_kills_a_process_that_is_not_the_recorded_one(tmp_path: Path) -> None:
    directory = pidfile.run_dir(tmp_path)
    # A reused pid (this very test process): same pid, another create time or argv[0].
    mine = _record(os.getpid(), daemon_pid=999999)
    for stale in (replace(mine, created=mine.created - 60), replace(mine, argv0="/bin/other")):
        pidfile.write(directory, stale)
        assert not pidfile.matches(stale)
        assert pidfile.reap(directory) == []
        assert not (directory / "m.json").exists()


def test_slot_workers_are_never_reaped(tmp_path: Path, fake_worker: tuple) -> None:  # type: ignore[type-arg]
    proc, _ = fake_worker
    directory = pidfile.run_dir(tmp_path)
    pidfile.write(directory, _record(proc.pid, daemon_pid=None))
    assert pidfile.reap(directory) == []
    assert proc.poll() is None


def test_reap_kills_the_group_an_external_server_left(tmp_path: Path) -> None:
    # A server that started a helper, then exited: no leader, the helper lives on.
    sleeper = "[sys.executable, '-c', 'import time; time.sleep(60)']"
    script = (
        f"import subprocess, sys; helper = subprocess.Popen({sleeper}); "
        "print(helper.pid, flush=True); sys.stdin.read()"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", script],
        start_new_session=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert leader.stdin is not None and leader.stdout is not None
    helper = psutil.Process(int(leader.stdout.readline()))
    record = _record(leader.pid, daemon_pid=999999)
    leader.stdin.close()  # the leader exits now
    leader.wait(10)
    leader.stdout.close()
    assert helper.is_running() and _group(helper.pid) == leader.pid
    pidfile.write(pidfile.run_dir(tmp_path), record)
    assert pidfile.reap(pidfile.run_dir(tmp_path)) == [leader.pid]
    helper.wait(5)


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
