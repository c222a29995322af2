"""A real `mlxctl serve` per test, on port 0, with fake or real workers behind it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import ModelRecord, open_registry

FAKE_WORKER = [sys.executable, "-m", "mlxctl.supervision.fake"]


def serve_command() -> list[str]:
    """`mlxctl serve` through the real entry point."""
    return [sys.executable, "-m", "mlxctl.cli.main", "serve"]


def real_worker_command() -> str:
    return ""  # the default: this Python's `-m mlxctl.cli.main worker`


def mlx_lm_server_env(tmp_path: Path) -> dict[str, str]:
    """A daemon's env for models served by `mlx_lm.server`: real workers beside them, a
    long crash cooldown, and an empty HF cache of its own (mlx_lm.server lists it)."""
    (tmp_path / "hf-cache").mkdir(exist_ok=True)
    return {
        "MLXCTL_WORKER_COMMAND": real_worker_command(),
        "MLXCTL_LOAD_COOLDOWN": "30",
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
    }


def fake_worker_command(*options: str) -> str:
    return shlex.join([*FAKE_WORKER, *options])


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        client = httpx.Client(base_url=self.url, timeout=60, headers=headers, **kwargs)
        self.clients.append(client)
        return client

    def ps(self) -> dict[str, dict[str, Any]]:
        rows = self.client().get("/api/admin/ps").json()["models"]
        return {row["model"]: row for row in rows}

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def access(self, request_id: str, timeout: float = 5) -> dict[str, Any]:
        """The access-log line of one request (written just after its last byte)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.logs():
                if line.get("event") == "request" and line.get("id") == request_id:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no access-log line for request {request_id}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(isolated_home: Path) -> Iterator[StartDaemon]:
    """`start_daemon(env={...}, args=[...])`: a running daemon; stopped after the test."""
    daemons: list[Daemon] = []

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Daemon:
        environ = {**os.environ, "MLXCTL_HOST": "127.0.0.1:0", **(env or {})}
        n = len(daemons)
        log_path = isolated_home.parent / f"daemon-{n}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        daemon = launch(environ, log_path, args)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop(signal.SIGTERM, timeout=30)


def launch(env: dict[str, str], log_path: Path, args: tuple[str, ...] = ()) -> Daemon:
    """`mlxctl serve --port 0` with `env`, its output in `log_path`; back once it listens."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*serve_command(), "--port", "0", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Daemon(
        proc, _wait_listening(proc, log_path), log_path, api_key=env.get("MLXCTL_API_KEY")
    )


def _wait_listening(proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if '"daemon.listening"' in line:
                port = int(json.loads(line)["port"])
                _wait_healthy(port, deadline)
                return port
        if proc.poll() is not None:
            raise AssertionError(f"mlxctl serve exited {proc.returncode}: {log_path.read_text()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"mlxctl serve did not start: {log_path.read_text()}")


def _wait_healthy(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise AssertionError("the daemon never answered /health")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny factory models (qwen2 and llama), built once per session."""
    root = tmp_path_factory.mktemp("daemon-models")
    return {arch: make_model(root / arch, arch=arch, size="tiny") for arch in ("qwen2", "llama")}


@pytest.fixture
def register(isolated_home: Path) -> Callable[..., ModelRecord]:
    """`register(slug, path)` a real model folder, or `register(slug, size_bytes=N)` a stub."""

    def add(slug: str, path: Path | None = None, **fields: Any) -> ModelRecord:
        registry = open_registry()
        try:
            if path is not None:
                return register_path(registry, path, slug=slug)
            stub = ModelRecord(slug=slug, cache_path=f"/stub/{slug}", **fields)
            return registry.add(stub)
        finally:
            registry.db.close()

    return add


def sse_lines(body: bytes) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
