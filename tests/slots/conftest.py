"""Slots on a free port range of their own, with fake workers; every slot process is
killed after the test (slot workers outlive daemons on purpose)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlxctl.registry import ModelRecord, open_registry
from mlxctl.supervision import probe
from tests.api.conftest import Daemon, StartDaemon, fake_worker_command, start_daemon  # noqa: F401

ALIASES = ["alpha", "beta", "gamma", "delta"]


def _free_range(n: int) -> int:
    for _ in range(200):
        # Below the kernel's ephemeral range (32768+), where port-0 binds and outgoing
        # connections could take a slot port between the check and its use.
        base = random.randint(20000, 32000)
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


@pytest.fixture
def slot_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Daemon env for slots on a free range; the CLI in this process sees it too."""
    base = _free_range(len(ALIASES))
    env = {
        "MLXCTL_SLOT_BASE_PORT": str(base),
        "MLXCTL_SLOT_ALIASES": ",".join(ALIASES),
        "MLXCTL_SLOT_RECONCILE_INTERVAL": "0",
        "MLXCTL_WORKER_COMMAND": fake_worker_command(),
        "MLXCTL_WORKER_STOP_GRACE": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    for port in range(base, base + len(ALIASES)):
        found = probe.listener(port)
        if found is None or found.pid is None or found.pid == os.getpid():
            continue
        command = found.command or ""
        if "mlxctl" in command or "http.server" in command:
            with contextlib.suppress(OSError):
                if os.getpgid(found.pid) == found.pid:
                    os.killpg(found.pid, signal.SIGKILL)
                else:
                    os.kill(found.pid, signal.SIGKILL)


def base_port(env: dict[str, str]) -> int:
    return int(env["MLXCTL_SLOT_BASE_PORT"])


def add_model(slug: str, path: Path, **fields: object) -> ModelRecord:
    """A registered model whose folder exists (the fake worker never reads it)."""
    path.mkdir(parents=True, exist_ok=True)
    registry = open_registry()
    try:
        return registry.add(ModelRecord(slug=slug, cache_path=str(path), **fields))  # type: ignore[arg-type]
    finally:
        registry.db.close()


Serve = Callable[..., Daemon]


@pytest.fixture
def serve(
    start_daemon: StartDaemon,  # noqa: F811
    slot_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Serve:
    """`serve(**env)`: a daemon on the test's slots; the CLI in this process talks to it."""

    def start(**env: str) -> Daemon:
        daemon = start_daemon({**slot_env, **env})
        monkeypatch.setenv("MLXCTL_HOST", daemon.url)
        return daemon

    return start


def slots(daemon: Daemon) -> dict[int, dict[str, Any]]:
    rows = daemon.client().get("/api/admin/slots").json()["slots"]
    return {row["port"]: row for row in rows}


def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")
