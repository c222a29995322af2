"""The worker's access log and traffic counts: what a slot's direct traffic leaves behind."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest

from mlxctl.traffic import Buckets
from mlxctl.worker.access import access_log
from tests.worker.conftest import Running

CHAT = "/v1/chat/completions"


def counted(http: httpx.Client, route: str, status: int) -> int:
    traffic = http.get("/v1/worker/stats").json()["traffic"]
    rows = [r["count"] for r in traffic["requests"] if (r["route"], r["status"]) == (route, status)]
    return rows[0] if rows else 0


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == access_log.name]
    return [x for x in lines if x.get("event") == "request"]


def wait_for_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    """A streamed request is logged once its body went out: maybe after the client read it."""
    deadline = time.monotonic() + 10
    while len(lines := request_lines(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return sorted(lines, key=lambda x: x["status"])


def test_one_json_line_and_one_count_per_request(
    worker: Running, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    ok_before, bad_before = counted(http, CHAT, 200), counted(http, CHAT, 400)
    ttft_before = http.get("/v1/worker/stats").json()["traffic"]["ttft_seconds"]["count"]
    caplog.set_level(logging.INFO, logger=access_log.name)
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}
    streamed = http.post(CHAT, json=body, headers={"X-Request-Id": "from-daemon"})
    assert streamed.status_code == 200 and streamed.headers["x-request-id"] == "from-daemon"
    refused = http.post(CHAT, json={"messages": [], "max_tokens": 3})
    assert refused.status_code == 400 and refused.headers["x-request-id"]
    http.get("/health")  # polled by the supervisor: neither logged nor counted

    lines = wait_for_lines(caplog, 2)
    assert [(x["id"], x["status"], x["path"]) for x in lines] == [
        ("from-daemon", 200, CHAT),
        (refused.headers["x-request-id"], 400, CHAT),
    ]
    first = lines[0]
    assert first["model"] == "tiny-qwen2" and first["method"] == "POST"
    assert first["completion_tokens"] == 3 and first["prompt_tokens"] > 0
    assert 0 < first["ttft_ms"] <= first["duration_ms"]
    assert "error" not in first and lines[1]["prompt_tokens"] is None
    assert counted(http, CHAT, 200) == ok_before + 1
    assert counted(http, CHAT, 400) == bad_before + 1
    traffic = http.get("/v1/worker/stats").json()["traffic"]
    assert traffic["ttft_seconds"]["count"] == ttft_before + 2


def test_buckets_are_cumulative_with_the_overflow_in_the_count() -> None:
    buckets = Buckets((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        buckets.observe(value)
    assert buckets.snapshot() == {"buckets": [[0.1, 2], [1.0, 3]], "sum": 7.65, "count": 4}
