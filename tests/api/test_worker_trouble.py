"""A real daemon whose workers misbehave: stopped, silent, unstartable; and the key
they get privately."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mlxctl.registry import ModelRecord
from tests.api.conftest import StartDaemon, fake_worker_command, real_worker_command, sse_lines

MB = 1_000_000
CHAT = "/v1/chat/completions"
Register = Callable[..., ModelRecord]
# Forces ~600 tokens through the real engine: a stream that runs for a while.
LONG = {"mlxctl_test_force": "hello world " * 300}


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def fake_env(**env: str) -> dict[str, str]:
    return {"MLXCTL_WORKER_COMMAND": fake_worker_command(), **env}


@pytest.mark.slow
def test_a_real_worker_stopped_mid_stream_is_killed_and_the_model_reloads(
    start_daemon: StartDaemon, register: Register, tiny_models: dict[str, Path]
) -> None:
    register("q", tiny_models["qwen2"])
    env = {
        "MLXCTL_WORKER_COMMAND": real_worker_command(),
        "MLXCTL_WORKER_TEST_HOOKS": "1",
        "MLXCTL_WORKER_LIVENESS_INTERVAL": "0.3",
        "MLXCTL_WORKER_LIVENESS_TIMEOUT": "2",
    }
    daemon = start_daemon(env)
    client = daemon.client()
    assert client.post("/api/admin/load", json={"model": "q"}).status_code == 200
    pid = daemon.ps()["q"]["pid"]
    # Busy is not dead: a generation longer than the liveness timeout leaves it alone.
    started = time.monotonic()
    longer = {"mlxctl_test_force": "hello world " * 900}
    busy = client.post(CHAT, json=chat("q", max_tokens=4000, **longer))
    assert busy.status_code == 200, busy.text
    assert time.monotonic() - started > 2  # longer than the liveness timeout
    assert daemon.ps()["q"]["pid"] == pid
    body = chat("q", max_tokens=2000, stream=True, **LONG)
    with client.stream("POST", CHAT, json=body) as r:
        assert r.status_code == 200
        chunks = r.iter_raw()
        received = next(chunks)
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        received += b"".join(chunks)
    ended = time.monotonic() - stopped
    events = sse_lines(received)
    error = json.loads(events[-1])["error"]
    assert error["code"] == "worker_lost" and b"[DONE]" not in events
    assert "stopped answering /health for 2 s and was killed" in error["message"]
    assert ended < 2 + 5  # the liveness timeout, plus a probe interval or two
    # The next request loads the model again, in a new process.
    answer = openai.OpenAI(base_url=daemon.url + "/v1", api_key="unused", max_retries=0)
    try:
        reply = answer.chat.completions.create(
            model="q", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    finally:
        answer.close()
    assert reply.choices[0].message.content is not None
    assert daemon.ps()["q"]["pid"] != pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_stream_that_goes_silent_ends_with_a_timeout_event(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env(MLXCTL_WORKER_IDLE_TIMEOUT="1"))
    client = daemon.client()
    started = time.monotonic()
    body = chat("a", max_tokens=50, stream=True, fake_stall_after=3)
    with client.stream("POST", CHAT, json=body, headers={"x-request-id": "quiet"}) as r:
        assert r.status_code == 200
        events = sse_lines(r.read())
    assert time.monotonic() - started < 10
    assert len(events) == 4  # three tokens, then the error
    error = json.loads(events[-1])["error"]
    assert error["code"] == "worker_timeout"
    assert "sent nothing for 1 s" in error["message"]
    assert "MLXCTL_WORKER_IDLE_TIMEOUT" in error["message"]
    assert daemon.access("quiet")["error"] == "worker_timeout"
    # Slow is not dead: the worker stays loaded and serves the next request.
    pid = daemon.ps()["a"]["pid"]
    assert client.post(CHAT, json=chat("a", max_tokens=2)).status_code == 200
    assert daemon.ps()["a"]["pid"] == pid


def test_no_first_byte_in_time_is_a_504(start_daemon: StartDaemon, register: Register) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env(MLXCTL_WORKER_FIRST_BYTE_TIMEOUT="1"))
    client = daemon.client()
    started = time.monotonic()
    reply = client.post(CHAT, json=chat("a", max_tokens=5, fake_stall_after=0))
    assert time.monotonic() - started < 10
    assert reply.status_code == 504
    error = reply.json()["error"]
    assert error["code"] == "worker_timeout" and error["type"] == "server_error"
    assert "did not start answering within 1 s" in error["message"]


def test_a_start_that_cannot_write_its_pid_file_fails_and_cleans_up(
    start_daemon: StartDaemon, register: Register, isolated_home: Path
) -> None:
    register("a", size_bytes=MB)
    blocker = isolated_home / "run" / "workers"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder: every pid file write fails")
    daemon = start_daemon(fake_env(MLXCTL_LOAD_COOLDOWN="1"))
    client = daemon.client()
    reply = client.post(CHAT, json=chat("a", max_tokens=2))
    assert reply.status_code == 503
    assert "cannot record the worker's pid file" in reply.json()["error"]["message"]
    # Nothing is left "unloading": the model is in its short cooldown, then loads again.
    states = {row["state"] for row in daemon.ps().values()}
    assert "unloading" not in states and "loading" not in states
    blocker.unlink()
    deadline = time.monotonic() + 10
    while (reply := client.post(CHAT, json=chat("a", max_tokens=2))).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.2)
    assert daemon.ps()["a"]["state"] == "ready"


def test_workers_get_the_key_privately_and_the_daemon_sends_it(
    start_daemon: StartDaemon, register: Register, isolated_home: Path
) -> None:
    register("a", size_bytes=MB)
    secret = "s3cret-key"
    daemon = start_daemon(fake_env(MLXCTL_API_KEY=secret, HF_TOKEN="hf_secret"))
    client = daemon.client()
    reply = client.post(CHAT, json=chat("a", max_tokens=2))
    assert reply.status_code == 200, reply.text  # the fake worker refuses calls without it
    row = daemon.ps()["a"]
    assert row["measured"]["mlx_active_bytes"] is not None  # the stats scrape sent it too
    worker_url, pid = row["url"], row["pid"]
    assert httpx.post(worker_url + CHAT, json=chat("a")).status_code == 401
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    key_file = Path(argv[argv.index(b"--api-key-file") + 1].decode())
    assert key_file.read_text() == secret and key_file.stat().st_mode & 0o777 == 0o600
    assert not any(secret.encode() in word for word in argv)
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert b"MLXCTL_API_KEY" not in environ and b"HF_TOKEN" not in environ
    assert environ[b"HF_HUB_OFFLINE"] == b"1"
    logs = "".join(p.read_text() for p in (isolated_home / "logs").glob("*.log*"))
    assert secret not in logs and secret not in daemon.log_path.read_text()


def test_the_daemon_log_file_rotates_while_it_runs(
    start_daemon: StartDaemon, register: Register, tmp_path: Path
) -> None:
    register("a", size_bytes=MB)
    log_file = tmp_path / "serve.log"
    env = fake_env(MLXCTL_LOG_FILE=str(log_file), MLXCTL_LOG_MAX_BYTES="2000")
    env["MLXCTL_LOG_BACKUPS"] = "2"
    daemon = start_daemon(env)
    client = daemon.client()
    for _ in range(40):  # one access line of ~300 bytes each
        assert client.get("/v1/models").status_code == 200
    time.sleep(0.2)
    files = sorted(p.name for p in tmp_path.glob("serve.log*"))
    assert files == ["serve.log", "serve.log.1", "serve.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.glob("serve.log*"))
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(line.get("event") == "request" for line in lines)


def test_slow_answers_do_not_block_health_checks(
    start_daemon: StartDaemon, register: Register
) -> None:
    # A long non-streamed answer keeps the worker busy; liveness must not kill it.
    register("a", size_bytes=MB)
    env = fake_env(MLXCTL_WORKER_LIVENESS_INTERVAL="0.2", MLXCTL_WORKER_LIVENESS_TIMEOUT="1")
    env["MLXCTL_WORKER_COMMAND"] = fake_worker_command("--tokens-per-second", "20")
    daemon = start_daemon(env)
    client = daemon.client()
    assert client.post("/api/admin/load", json={"model": "a"}).status_code == 200
    pid = daemon.ps()["a"]["pid"]
    reply = client.post(CHAT, json=chat("a", max_tokens=60))
    assert reply.status_code == 200  # 3 s of work, three liveness timeouts long
    assert daemon.ps()["a"]["pid"] == pid
    assert 'mlxctl_worker_crashes_total{model="a"}' not in client.get("/metrics").text
