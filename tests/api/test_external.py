"""Models served by an external OpenAI-compatible command, supervised like our workers."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from mlxctl.registry import ModelRecord, open_registry
from tests.api.conftest import Daemon, StartDaemon, mlx_lm_server_env

Register = Callable[..., ModelRecord]
MESSAGES = [{"role": "user", "content": "Hello"}]
SEGFAULT = Path(__file__).with_name("segfault_server.py")


def with_command(record: ModelRecord, command: str) -> None:
    registry = open_registry()
    try:
        registry.add_many([replace(record, extra={**record.extra, "command": command})])
    finally:
        registry.db.close()


def client_of(daemon: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def daemon(
    start_daemon: StartDaemon, register: Register, tiny_models: dict[str, Path], tmp_path: Path
) -> Daemon:
    mlx_lm = register("ext", tiny_models["qwen2"])
    python = shlex.quote(sys.executable)
    with_command(mlx_lm, f"{python} -m mlx_lm server --model {{model}} --port {{port}}")
    seg = register("seg", tiny_models["llama"])
    with_command(seg, f"{python} {shlex.quote(str(SEGFAULT))} --port {{port}}")
    register("q", tiny_models["qwen2"])
    return start_daemon(mlx_lm_server_env(tmp_path))


def test_mlx_lm_server_is_loaded_served_evicted_and_crash_handled(daemon: Daemon) -> None:
    client = client_of(daemon)
    reply = client.chat.completions.create(model="ext", messages=MESSAGES, max_tokens=3)
    assert reply.choices[0].message.content is not None
    first = daemon.ps()["ext"]
    assert first["state"] == "ready" and first["pid"]

    # kill -9 from outside: noticed, and the next request simply loads it again.
    os.kill(first["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "ext" in daemon.ps() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ext" not in daemon.ps()
    client.chat.completions.create(model="ext", messages=MESSAGES, max_tokens=2)
    second = daemon.ps()["ext"]["pid"]
    assert second != first["pid"]

    # Evicted like any worker: unload stops the external process.
    assert daemon.client().post("/api/admin/unload", json={"model": "ext"}).status_code == 200
    deadline = time.monotonic() + 10
    while "ext" in daemon.ps() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ext" not in daemon.ps()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


def test_a_worker_that_segfaults_on_its_first_token(daemon: Daemon) -> None:
    client = client_of(daemon)
    with pytest.raises(openai.APIStatusError) as crashed:
        client.chat.completions.create(model="seg", messages=MESSAGES, max_tokens=3)
    assert crashed.value.status_code in (502, 503)
    assert daemon.proc.poll() is None  # the daemon is alive
    reply = client.chat.completions.create(model="q", messages=MESSAGES, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")

    ps = daemon.ps()
    assert ps["seg"]["state"] == "failed" and "SIGSEGV" in ps["seg"]["reason"]
    # A cooldown, not a retry storm: the next request is refused at once, with Retry-After.
    with pytest.raises(openai.APIStatusError) as cooling:
        client.chat.completions.create(model="seg", messages=MESSAGES, max_tokens=3)
    assert cooling.value.status_code == 503
    assert "SIGSEGV" in cooling.value.message
    assert int(cooling.value.response.headers["retry-after"]) > 0
