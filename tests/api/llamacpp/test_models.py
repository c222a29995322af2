"""llama.cpp's router routes, driven as Open WebUI's llama.cpp provider drives them: list with
status, load, watch the status change over SSE, unload. And CORS: a browser page from an
origin in MLXCTL_ORIGINS gets its preflight answered on these and the Ollama routes."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon

ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"MLXCTL_ORIGINS": "http://localhost:*"}
    with module_daemon(tmp_path_factory.mktemp("llamacpp"), env) as daemon:
        yield daemon


class Events:
    """`GET /models/sse` read on a thread, its `data:` payloads queued."""

    def __init__(self, daemon: Daemon) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = httpx.Client(base_url=daemon.url, timeout=None)
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(10)

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/models/sse") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.queue.put(json.loads(line[6:]))
        except httpx.HTTPError:
            pass  # closed by the test

    def until(self, model: str, status: str, timeout: float = 60) -> list[dict[str, Any]]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(event)
            if event["model"] == model and event["data"]["status"] == status:
                return seen
        raise AssertionError(f"no {status} event for {model}; saw {seen}")

    def close(self) -> None:
        self.client.close()


def _status(http: httpx.Client, model: str) -> dict[str, Any]:
    listing = http.get("/models").json()
    assert listing["object"] == "list"
    row = next(r for r in listing["data"] if r["id"] == model)
    assert row["object"] == "model"
    status: dict[str, Any] = row["status"]
    return status


def test_list_load_watch_unload(daemon: Daemon) -> None:
    http = daemon.client()
    assert _status(http, "q")["value"] == "unloaded"
    events = Events(daemon)
    try:
        assert http.post("/models/load", json={"model": "q"}).json() == {"success": True}
        again = http.post("/models/load", json={"model": "q"})
        assert again.status_code == 400 and "already running" in again.json()["error"]["message"]
        seen = events.until("q", "loaded")
        assert [e["data"]["status"] for e in seen] == ["loading", "loaded"]
        assert all(e["event"] == "status_change" for e in seen)
        assert _status(http, "q")["value"] == "loaded"
        assert daemon.ps()["q"]["state"] == "ready"  # the scheduler's own view agrees

        assert http.post("/models/unload", json={"model": "q"}).json() == {"success": True}
        gone = events.until("q", "unloaded")[-1]
        assert gone["data"]["exit_code"] == 0
        assert _status(http, "q")["value"] == "unloaded"
        assert "q" not in daemon.ps()
    finally:
        events.close()
    twice = http.post("/models/unload", json={"model": "q"})
    assert twice.status_code == 400 and "not running" in twice.json()["error"]["message"]


def test_errors_use_the_openai_envelope(daemon: Daemon) -> None:
    http = daemon.client()
    missing = http.post("/models/load", json={"model": "no-such-model"})
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    nameless = http.post("/models/unload", json={})
    assert nameless.status_code == 400 and nameless.json()["error"]["param"] == "model"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/models/load"),
        ("GET", "/models"),
        ("GET", "/models/sse"),
        ("POST", "/api/create"),
        ("POST", "/api/push"),
        ("POST", "/api/blobs/sha256:" + "0" * 64),
    ],
)
def test_browser_preflight_for_an_allowed_origin(daemon: Daemon, method: str, path: str) -> None:
    http = daemon.client()
    ask = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, authorization",
    }
    answer = http.options(path, headers=ask)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert method in answer.headers["access-control-allow-methods"]
    assert "content-type" in answer.headers["access-control-allow-headers"]
    refused = http.options(path, headers={**ask, "Origin": "https://evil.example"})
    assert refused.status_code == 403


def test_an_allowed_origin_reads_the_answer(daemon: Daemon) -> None:
    http = daemon.client()
    answer = http.get("/models", headers={"Origin": ORIGIN})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ORIGIN
    other = http.get("/models", headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
