"""What the supervisor checks: who answers the port, whether a ready worker still
answers, what a child gets (environment, argv, cwd), and a start that fails half-way."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlxctl.registry import ModelRecord
from mlxctl.supervision.base import LoadError
from mlxctl.supervision.exitwatch import running
from mlxctl.supervision.process import Placement, SupervisionConfig, WorkerProcess, free_port

pytestmark = pytest.mark.anyio
FAKE = [sys.executable, "-m", "mlxctl.supervision.fake"]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def squatter() -> Iterator[int]:
    """A fake worker someone else started, holding a port: it answers `/health` ok."""
    port = free_port()
    proc = subprocess.Popen(
        [*FAKE, "m", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port
    proc.kill()
    proc.wait()


def worker(
    tmp_path: Path,
    command: list[str],
    placement: Placement | None = None,
    extra: dict[str, object] | None = None,
    **config: object,
) -> WorkerProcess:
    rec = ModelRecord(slug="m", cache_path=str(tmp_path), extra=extra or {})
    cfg = SupervisionConfig(home=tmp_path, command=command, **config)  # type: ignore[arg-type]
    return WorkerProcess(rec, cfg, placement)


async def test_a_process_squatting_the_port_never_counts_as_ready(
    tmp_path: Path, squatter: int
) -> None:
    # Our command never binds; the squatter answers `ok` on the port we were given.
    w = worker(tmp_path, SLEEPER, Placement(port=squatter))
    await w.start()
    with pytest.raises(LoadError, match="answered by another process") as info:
        await w.wait_ready(20)
    assert f"pid {w.pid}" in str(info.value)
    assert w.state == "failed"
    assert await asyncio.wait_for(w.wait_exit(), 10) is not None  # ours was stopped


async def test_an_external_server_is_ours_only_when_it_holds_the_port(
    tmp_path: Path, squatter: int
) -> None:
    command = f"{shlex.join(SLEEPER)} {{port}}"
    w = worker(tmp_path, [], Placement(port=squatter), extra={"command": command})
    await w.start()
    with pytest.raises(LoadError, match="answered by another process"):
        await w.wait_ready(20)
    await w.stop(1)


async def test_a_worker_that_stops_answering_is_killed(tmp_path: Path) -> None:
    w = worker(tmp_path, FAKE, liveness_interval=0.2, liveness_timeout=1.5)
    await w.start()
    await w.wait_ready(20)
    assert w.pid is not None
    await asyncio.sleep(0.5)
    assert w.state == "ready"  # answering: left alone
    os.kill(w.pid, signal.SIGSTOP)
    started = time.monotonic()
    assert await asyncio.wait_for(w.wait_exit(), 10) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert "stopped answering /health for 1.5 s and was killed" in w.exit_message()


async def test_a_pid_file_that_cannot_be_written_ends_the_start_cleanly(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "workers").write_text("a file where a folder should be")
    w = worker(tmp_path, FAKE)
    with pytest.raises(LoadError, match="cannot record the worker's pid file"):
        await w.start()
    assert w.pid is not None and w.state == "failed"
    assert await asyncio.wait_for(w.wait_exit(), 10) is not None
    assert not running(w.pid)
    started = time.monotonic()
    await w.stop(5)  # what the scheduler does next: returns at once
    assert time.monotonic() - started < 2


async def test_a_child_gets_no_secrets_an_offline_hub_and_the_home_as_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "MLXCTL_API_KEY": "k3y",
        "HF_TOKEN": "hf_x",
        "DOCKER_AUTH_CONFIG": "{}",
        "OPENAI_API_KEY": "sk",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLXCTL_KEEP_ALIVE", "7m")  # an ordinary setting passes through
    home = tmp_path / "home"
    seen = tmp_path / "seen.json"
    dump = (
        "import json, os, sys, time; json.dump({'env': dict(os.environ), 'cwd': os.getcwd(), "
        f"'argv': sys.argv}}, open({str(seen)!r}, 'w')); time.sleep(60)"
    )
    key_file = tmp_path / "worker.key"
    key_file.write_text("k3y")
    w = worker(home, [sys.executable, "-c", dump], api_key="k3y", key_file=key_file)
    await w.start()
    try:
        deadline = time.monotonic() + 15
        while not seen.exists() or not seen.read_text():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        child = json.loads(seen.read_text())
    finally:
        await w.stop(1)
    env = child["env"]
    assert not set(secrets) & set(env)
    assert env["HF_HUB_OFFLINE"] == "1" and env["MLXCTL_KEEP_ALIVE"] == "7m"
    assert len(env["MLXCTL_WORKER_NONCE"]) == 32
    assert child["cwd"] == str(home)
    argv = child["argv"]
    assert argv[argv.index("--api-key-file") + 1] == str(key_file)
    assert "k3y" not in " ".join(argv) and "k3y" not in w.log_path.read_text()
    assert w.headers == {"Authorization": "Bearer k3y"}
