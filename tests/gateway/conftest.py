"""Real processes for the gateway tests: fake workers on slot ports and one LiteLLM proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

MASTER_KEY = "sk-mlxctl-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


FakeWorker = Callable[[str, int], subprocess.Popen[bytes]]


@pytest.fixture
def fake_worker() -> Iterator[FakeWorker]:
    """Starts `python -m mlxctl.supervision.fake MODEL` on a port; stops whatever is left."""
    started: list[subprocess.Popen[bytes]] = []

    def start(model: str, port: int) -> subprocess.Popen[bytes]:
        args = ["--host", "127.0.0.1", "--port", str(port), "--load-seconds", "0"]
        cmd = [
            sys.executable,
            "-m",
            "mlxctl.supervision.fake",
            *args,
            "--tokens-per-second",
            "1000",
        ]
        proc = subprocess.Popen([*cmd, model], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=30)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            stop(proc)


@pytest.fixture(scope="module")
def slot_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def litellm_proxy(
    tmp_path_factory: pytest.TempPathFactory, slot_port: int
) -> Iterator[tuple[str, Path]]:
    """One real `litellm --config` proxy per module, serving the config for `slot_port`."""
    from mlxctl.gateway.litellm import build_config, to_yaml
    from mlxctl.slots.table import SlotSpec

    folder = tmp_path_factory.mktemp("litellm")
    config = folder / "config.yaml"
    config.write_text(
        to_yaml(
            build_config(
                [SlotSpec(slot_port, "jerry-xl"), SlotSpec(slot_port + 1, "jerry-l")], "127.0.0.1"
            )
        )
    )
    port = free_port()
    exe = Path(sys.executable).parent / "litellm"
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOG": "ERROR"}
    env.pop("DATABASE_URL", None)
    log = (folder / "litellm.log").open("wb")
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc)
        yield f"http://127.0.0.1:{port}", config
    finally:
        stop(proc)
        log.close()
