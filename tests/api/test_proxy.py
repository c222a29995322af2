"""The daemon in front of fake workers: proxying, streaming, errors, limits, admin."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from mlxctl.registry import ModelRecord
from tests.api.conftest import StartDaemon, fake_worker_command, sse_lines

JSON = {"content-type": "application/json"}

MB = 1_000_000
CHAT = "/v1/chat/completions"
Register = Callable[..., ModelRecord]


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def fake_env(*options: str, **env: str) -> dict[str, str]:
    return {"MLXCTL_WORKER_COMMAND": fake_worker_command(*options), **env}


def test_streams_pass_through_byte_for_byte(start_daemon: StartDaemon, register: Register) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env())
    client = daemon.client()
    with client.stream("POST", CHAT, json=chat("a", max_tokens=4, stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert len(r.headers["x-request-id"]) == 16
        body = r.read()
    events = sse_lines(body)
    assert events[-1] == b"[DONE]"
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert contents == ["tok0 ", "tok1 ", "tok2 ", "tok3 ", None]
    # The same request straight to the worker gives the same bytes (ids aside).
    worker_url = daemon.ps()["a"]["url"]
    direct = httpx.post(worker_url + CHAT, json=chat("a", max_tokens=4, stream=True)).content
    assert direct.replace(b"fake2", b"fake1") == body
    reply = client.post(CHAT, json=chat("a", max_tokens=2), headers={"x-request-id": "abc"})
    assert reply.headers["x-request-id"] == "abc"
    assert reply.json()["choices"][0]["message"]["content"] == "tok0 tok1 "
    last = daemon.access("abc")
    assert last["model"] == "a" and last["status"] == 200 and last["method"] == "POST"
    assert last["completion_tokens"] == 2 and last["ttft_ms"] is not None


def test_a_client_disconnect_cancels_the_worker_stream(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env("--tokens-per-second", "50"))
    client = daemon.client()
    with client.stream("POST", CHAT, json=chat("a", max_tokens=500, stream=True)) as r:
        chunks = r.iter_raw()
        next(chunks)
    worker_url = daemon.ps()["a"]["url"]
    deadline = time.monotonic() + 5
    while httpx.get(worker_url + "/v1/worker/stats").json()["cancelled_total"] != 1:
        assert time.monotonic() < deadline, "the worker never saw the disconnect"
        time.sleep(0.05)
    assert daemon.ps()["a"]["in_flight"] == 0


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env())
    client = daemon.client()
    client.post(CHAT, json=chat("a", max_tokens=1))
    first_pid = daemon.ps()["a"]["pid"]
    with client.stream(
        "POST", CHAT, json=chat("a", max_tokens=50, stream=True, fake_crash_after=3)
    ) as r:
        assert r.status_code == 200
        body = r.read()
    events = sse_lines(body)
    error = json.loads(events[-1])["error"]
    assert len(events) == 4 and b"[DONE]" not in events
    assert error["code"] == "worker_lost" and error["type"] == "server_error"
    assert "the worker for 'a' stopped mid-stream" in error["message"]
    assert "SIGKILL" in error["message"]
    # The daemon lives on, and the next request gets a fresh worker.
    reply = client.post(CHAT, json=chat("a", max_tokens=1))
    assert reply.status_code == 200
    assert first_pid != daemon.ps()["a"]["pid"]
    metrics = client.get("/metrics").text
    assert 'mlxctl_worker_crashes_total{model="a"} 1.0' in metrics


def test_errors_before_the_first_byte_use_the_openai_envelope(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("alpha", size_bytes=MB)
    daemon = start_daemon(fake_env())
    client = daemon.client()
    cases = [
        (chat("alpah"), 404, "model_not_found", "did you mean: alpha?"),
        ({"messages": []}, 400, "missing", "You must provide a model parameter."),
        (chat("alpha", keep_alive="soon"), 400, "invalid_value", "'keep_alive' must be"),
    ]
    for body, status, code, text in cases:
        reply = client.post(CHAT, json=body)
        assert reply.status_code == status
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == code and text in error["message"]
    assert (
        client.post(CHAT, content=b"{nope", headers=JSON).json()["error"]["code"] == "invalid_json"
    )
    unknown = client.get("/v1/no-such-route")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["alpha"]
    assert client.get("/v1/models/alpha").json()["id"] == "alpha"


def test_a_full_worker_queue_passes_its_429_through(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    env = fake_env("--tokens-per-second", "50")
    daemon = start_daemon({**env, "MLXCTL_WORKER_MAX_BATCH": "1", "MLXCTL_WORKER_MAX_QUEUE": "0"})
    client = daemon.client()
    client.post(CHAT, json=chat("a", max_tokens=1))  # load it
    with client.stream("POST", CHAT, json=chat("a", max_tokens=200, stream=True)) as r:
        chunks = r.iter_raw()  # keep it: a dropped iterator closes the response
        next(chunks)
        busy = daemon.client().post(CHAT, json=chat("a", max_tokens=1))
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "queue_full"


def test_a_full_load_queue_is_429_with_retry_after(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon({**fake_env("--load-seconds", "1.5"), "MLXCTL_MAX_QUEUE": "1"})

    def ask(_: int) -> httpx.Response:
        return httpx.post(daemon.url + CHAT, json=chat("a", max_tokens=1), timeout=30)

    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(ask, range(3)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 429, 429]
    refused = next(r for r in replies if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "MLXCTL_MAX_QUEUE=1" in refused.json()["error"]["message"]


def test_a_failed_load_is_503_then_cools_down(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon({**fake_env("--fail-load"), "MLXCTL_LOAD_COOLDOWN": "30"})
    client = daemon.client()
    first = client.post(CHAT, json=chat("a"))
    assert first.status_code == 503 and first.json()["error"]["code"] == "load_failed"
    message = first.json()["error"]["message"]
    assert "model 'a' failed to load" in message and "fake load failure" in message
    assert "logs/a.log" in message
    started = time.monotonic()
    second = client.post(CHAT, json=chat("a"))
    assert second.status_code == 503 and time.monotonic() - started < 0.5
    assert 1 <= int(second.headers["retry-after"]) <= 30


def test_admin_load_ps_status_unload(start_daemon: StartDaemon, register: Register) -> None:
    register("a", size_bytes=3 * MB, kv_bytes_per_token=100, context_length=1000)
    daemon = start_daemon({**fake_env("--rss-mb", "32"), "MLXCTL_MEMORY_BUDGET": "1GB"})
    client = daemon.client()
    row = client.post("/api/admin/load", json={"model": "a", "keep_alive": "-1"}).json()
    assert row["model"] == "a" and row["state"] == "ready" and row["keep_alive"] is None
    assert row["estimated_bytes"] == 3 * MB + 100 * 1000 * 8
    assert row["measured"]["rss_bytes"] > 32 << 20
    assert row["measured"]["mlx_active_bytes"] == 32 << 20
    assert row["log"].endswith("logs/a.log")
    status = client.get("/api/admin/status").json()
    assert (
        status["budget_bytes"] == 1_000_000_000 and status["used_bytes"] == row["estimated_bytes"]
    )
    assert status["free_bytes"] == status["budget_bytes"] - status["used_bytes"]
    assert status["loaded_models"] == 1 and status["budget"] == "MLXCTL_MEMORY_BUDGET=1GB"
    pid = row["pid"]
    assert client.post("/api/admin/unload", json={"model": "a"}).json() == {
        "model": "a",
        "unloaded": True,
    }
    assert daemon.ps() == {}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    again = client.post("/api/admin/unload", json={"model": "a"}).json()
    assert again["unloaded"] is False
    missing = client.post("/api/admin/load", json={"model": "zzz"})
    assert missing.status_code == 404


def test_sigterm_lets_running_requests_finish_then_exits_0(
    start_daemon: StartDaemon, register: Register
) -> None:
    register("a", size_bytes=MB)
    daemon = start_daemon(fake_env("--tokens-per-second", "20"))
    client = daemon.client()
    client.post(CHAT, json=chat("a", max_tokens=1))
    worker_pid = daemon.ps()["a"]["pid"]
    result: dict[str, Any] = {}

    def stream() -> None:
        with httpx.stream(
            "POST", daemon.url + CHAT, json=chat("a", max_tokens=20, stream=True)
        ) as r:
            result["body"] = r.read()

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(0.3)
    daemon.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # A new request is not served: refused, or reset when it races the listener's close.
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(daemon.url + CHAT, json=chat("a"))
    reader.join(10)
    assert sse_lines(result["body"])[-1] == b"[DONE]"
    assert daemon.proc.wait(10) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
