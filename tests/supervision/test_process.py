"""WorkerProcess against real processes: the fake worker, and a few misbehaving commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from mlxctl.registry import ModelRecord
from mlxctl.supervision.base import LoadError
from mlxctl.supervision.command import worker_command
from mlxctl.supervision.logtail import last_error_line
from mlxctl.supervision.process import SupervisionConfig, WorkerProcess

pytestmark = pytest.mark.anyio
FAKE = [sys.executable, "-m", "mlxctl.supervision.fake"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(tmp_path: Path, command: list[str], slug: str = "m", **config: object) -> WorkerProcess:
    rec = ModelRecord(slug=slug, cache_path=str(tmp_path))
    return WorkerProcess(rec, SupervisionConfig(home=tmp_path, command=command, **config))  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); /proc tells it apart where there is one.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


async def test_start_ready_serve_stop(tmp_path: Path) -> None:
    worker = make(tmp_path, [*FAKE, "--load-seconds", "0.2"])
    await worker.start()
    assert worker.state == "loading" and worker.pid is not None
    assert os.getpgid(worker.pid) == worker.pid  # its own process group
    assert (tmp_path / "run" / "workers" / "m.json").exists()
    await worker.wait_ready(10)
    assert worker.state == "ready"
    async with httpx.AsyncClient() as client:
        health = (await client.get(worker.base_url + "/health")).json()
    assert health["status"] == "ok" and health["pid"] == worker.pid
    started = time.monotonic()
    await worker.stop(grace=5)
    assert time.monotonic() - started < 3
    assert worker.state == "exited" and worker.returncode is not None
    assert not (tmp_path / "run" / "workers" / "m.json").exists()
    log = worker.log_path.read_text()
    assert log.startswith("=== mlxctl ") and " m --host 127.0.0.1 --port " in log


async def test_a_crash_is_noticed_at_once(tmp_path: Path) -> None:
    worker = make(tmp_path, FAKE)
    await worker.start()
    await worker.wait_ready(10)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    assert await asyncio.wait_for(worker.wait_exit(), 2) == -signal.SIGKILL
    assert worker.exit_message().startswith("the worker was killed by SIGKILL")


async def test_a_failed_load_says_why_and_where_the_log_is(tmp_path: Path) -> None:
    worker = make(tmp_path, [*FAKE, "--fail-load"])
    await worker.start()
    with pytest.raises(LoadError) as info:
        await worker.wait_ready(10)
    message = str(info.value)
    assert "fake load failure" in message and str(worker.log_path) in message
    assert worker.state == "failed"
    await worker.stop(grace=2)


async def test_a_load_that_takes_too_long_times_out(tmp_path: Path) -> None:
    worker = make(tmp_path, [*FAKE, "--load-seconds", "30"])
    await worker.start()
    with pytest.raises(LoadError, match=r"not ready after 0\.5 s"):
        await worker.wait_ready(0.5)
    await worker.stop(grace=2)


async def test_a_worker_that_exits_during_load_fails_fast(tmp_path: Path) -> None:
    code = (
        "import sys; print('Traceback (most recent call last):'); "
        "print('ValueError: no weights'); sys.exit(3)"
    )
    worker = make(tmp_path, [sys.executable, "-c", code])
    await worker.start()
    started = time.monotonic()
    with pytest.raises(LoadError, match=r"exited with code 3: ValueError: no weights"):
        await worker.wait_ready(30)
    assert time.monotonic() - started < 5


async def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('deaf', flush=True); time.sleep(60)"
    )
    worker = make(tmp_path, [sys.executable, "-c", code])
    await worker.start()
    deadline = time.monotonic() + 15
    while "\ndeaf\n" not in worker.log_path.read_text():  # its handler is in place
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await worker.stop(grace=0.3)
    assert worker.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 3


async def test_a_missing_command_is_a_load_error(tmp_path: Path) -> None:
    worker = make(tmp_path, ["/nonexistent/mlxctl-worker"])
    with pytest.raises(LoadError, match="cannot start the worker"):
        await worker.start()
    assert await asyncio.wait_for(worker.wait_exit(), 1) is None


async def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    worker = make(tmp_path, FAKE)
    await worker.stop(grace=1)
    assert await worker.wait_exit() is None


def test_workers_die_with_a_daemon_killed_hard(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from mlxctl.registry import ModelRecord
        from mlxctl.supervision.process import SupervisionConfig, WorkerProcess

        async def main():
            rec = ModelRecord(slug="m", cache_path="/x")
            config = SupervisionConfig(home=Path({str(tmp_path)!r}), command={FAKE!r})
            w = WorkerProcess(rec, config)
            await w.start()
            print(w.pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        worker_pid = int(daemon.stdout.readline())
        assert not gone(worker_pid)
    finally:
        daemon.kill()
        daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()
    deadline = time.monotonic() + 5
    while not gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(worker_pid)


def test_last_error_line_reads_only_the_latest_run(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    log.write_text(
        "=== mlxctl start: old\nValueError: old failure\n"
        "=== mlxctl start: new\nINFO loading\nTraceback (most recent call last):\n"
        '  File "x.py"\nOSError: no such file\nINFO shutting down\n'
    )
    assert last_error_line(log) == "OSError: no such file"
    log.write_text("=== mlxctl start: new\nall good\n")
    assert last_error_line(log) == "all good"
    assert last_error_line(tmp_path / "missing.log") is None


def test_worker_command_default_and_override() -> None:
    assert worker_command("") == [sys.executable, "-m", "mlxctl.cli.main", "worker"]
    assert worker_command("python -m x --opt 'a b'") == ["python", "-m", "x", "--opt", "a b"]
