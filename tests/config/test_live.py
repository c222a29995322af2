"""A running daemon follows config.yaml: edits apply without dropping a stream, a changed
context drains and restarts only that worker, a bad edit changes nothing; SIGHUP and the
reload route do the same. Real daemon, fake workers (the worker's contract, no model)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import StartDaemon, sse_lines
from tests.config.daemon import FAKE, Shared

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _worker_options(row: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = httpx.get(row["url"] + "/health", timeout=5).json()["options"]
    return options


def test_an_edit_applies_live_and_a_stream_finishes_untouched(
    start_daemon: StartDaemon, register: Callable[..., Any], isolated_home: Path
) -> None:
    register("m1", size_bytes=1000)
    register("m2", size_bytes=1000)
    config = isolated_home / "config.yaml"
    config.write_text("models:\n  m1:\n    context: 1000\naliases:\n  first: [m1]\n")
    daemon = start_daemon(env={"MLXCTL_WORKER_COMMAND": FAKE})  # the file watcher on
    client = daemon.client()
    body = {"model": "first", **CHAT, "stream": True, "max_tokens": 160}  # 4 s of tokens
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        received = next(chunks)
        old = daemon.ps()["m1"]
        assert _worker_options(old)["context"] == 1000
        config.write_text(
            "models:\n  m1:\n    context: 2000\naliases:\n  first: [m1]\n  second: [m2]\n"
        )
        # The new alias resolves at once (the watcher's reload), while m1 still streams.
        _until(lambda: "second" in client.get("/api/admin/config").json()["aliases"])
        other = client.post("/v1/chat/completions", json={"model": "second", **CHAT})
        assert other.status_code == 200 and other.json()["model"] == "m2"
        assert daemon.ps()["m1"]["pid"] == old["pid"]  # draining, not killed
        received += b"".join(chunks)
    events = sse_lines(received)
    assert events[-1] == b"[DONE]"
    text = "".join(
        (json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for e in events[:-1]
    )
    assert text == "".join(f"tok{i} " for i in range(160))
    assert json.loads(events[0])["model"] == "m1"  # the alias's answer names the model
    # The next request runs on a drained-and-restarted worker with the new context.
    assert client.post("/v1/chat/completions", json={"model": "m1", **CHAT}).status_code == 200
    new = daemon.ps()["m1"]
    assert new["pid"] != old["pid"] and new["options"]["context"] == 2000
    assert _worker_options(new)["context"] == 2000
    assert daemon.ps()["m2"]["pid"] is not None  # untouched by the reload
    # A bad edit seen by the watcher is refused with its line; the config in use stays.
    config.write_text("aliases:\n  first: [m1]\n  second: m2\n")
    _until(lambda: any("config reload refused" in str(x.get("msg")) for x in daemon.logs()))
    refusal = next(x["msg"] for x in daemon.logs() if "config reload refused" in str(x.get("msg")))
    assert f"{config}:3: aliases.second:" in refusal
    other = client.post("/v1/chat/completions", json={"model": "second", **CHAT})
    assert other.status_code == 200 and other.json()["model"] == "m2"
    assert daemon.ps()["m1"]["pid"] == new["pid"]


def test_a_bad_edit_is_refused_and_sighup_applies_a_good_one(shared: Shared) -> None:
    shared.use("aliases:\n  first: [m1]\n")
    assert shared.chat("first").json()["model"] == "m1"
    shared.config.write_text("aliases:\n  first: [m1]\nmodels:\n  m1:\n    max_batch: none\n")
    refused = shared.daemon.client().post("/api/admin/config/reload")
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert message.startswith(f"{shared.config}:5: models.m1.max_batch:")
    assert shared.chat("first").json()["model"] == "m1"  # the old config still serves
    shared.config.write_text("aliases:\n  first: [m1]\n  later: [m1]\n")
    assert shared.chat("later").status_code == 404  # not watching: not applied yet
    os.kill(shared.daemon.proc.pid, signal.SIGHUP)
    _until(lambda: shared.chat("later").status_code == 200)
    assert shared.daemon.proc.poll() is None
    assert any("config reload refused" in str(line.get("msg")) for line in shared.daemon.logs())


def test_an_alias_prefers_the_loaded_model_then_what_fits(shared: Shared) -> None:
    shared.use("settings:\n  memory_budget: 1GiB\naliases:\n  auto: [big, small]\n")
    # Nothing loaded, only `small` fits: it is loaded and answers.
    answer = shared.chat("auto")
    assert answer.status_code == 200 and answer.json()["model"] == "small"
    shared.config.write_text("settings:\n  memory_budget: 8GiB\naliases:\n  auto: [big, small]\n")
    report = shared.daemon.client().post("/api/admin/config/reload").json()
    assert report["settings"] == ["memory_budget"]
    # `big` fits now, but `small` is loaded and free: it answers, `big` is not loaded.
    assert shared.chat("auto").json()["model"] == "small"
    assert set(shared.daemon.ps()) == {"small"}
    client = shared.daemon.client()
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed["auto"]["alias_of"] == ["big", "small"] and "big" in listed
    tags = {m["name"]: m for m in client.get("/api/tags").json()["models"]}
    assert tags["auto"]["alias_of"] == ["big", "small"]


def test_sampling_defaults_and_request_presets(shared: Shared) -> None:
    shared.use(
        "models:\n  m1:\n    sampling: {temperature: 0.3, top_k: 20}\n"
        "presets:\n  creative:\n    sampling: {temperature: 1.1, seed: 7}\n"
    )
    assert shared.chat("m1").json()["fake_sampling"] == {"temperature": 0.3, "top_k": 20}
    own = shared.chat("m1", temperature=0.9).json()["fake_sampling"]
    assert own == {"temperature": 0.9, "top_k": 20}
    preset = shared.chat("m1", preset="creative").json()["fake_sampling"]
    assert preset == {"temperature": 1.1, "top_k": 20, "seed": 7}
    unknown = shared.chat("m1", preset="nope")
    assert unknown.status_code == 400 and "no preset named 'nope'" in unknown.text


def test_pinned_is_never_evicted_and_preload_loads(shared: Shared) -> None:
    shared.use("settings:\n  memory_budget: 1GiB\n")
    shared.config.write_text(
        "settings:\n  memory_budget: 1GiB\nmodels:\n  keep:\n    pinned: true\n    preload: true\n"
    )
    assert shared.daemon.client().post("/api/admin/config/reload").status_code == 200
    _until(lambda: shared.daemon.ps().get("keep", {}).get("state") == "ready")
    assert shared.daemon.ps()["keep"]["keep_alive"] is None  # pinned: never expires
    refused = shared.chat("other")
    assert refused.status_code == 503  # it would have had to evict `keep`
    assert set(shared.daemon.ps()) == {"keep"}


def test_the_guard_follows_a_reload(shared: Shared) -> None:
    origin = {"Origin": "http://app.example"}

    def models() -> httpx.Response:
        return shared.daemon.client().get("/v1/models", headers=origin)

    assert models().status_code == 403  # a web page's origin, not listed
    text = "settings:\n  origins: http://app.example\n  max_body_bytes: 2048\n"
    try:
        report = shared.use(text)
        assert {"origins", "max_body_bytes"} <= set(report["settings"])  # type: ignore[arg-type]
        assert report["restart_required"] == []
        listed = models()
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "http://app.example"
        big = shared.chat("m1", stop=["x" * 4096])
        assert big.status_code == 413
    finally:
        shared.use("")
    assert models().status_code == 403
    assert shared.chat("m1", stop=["x" * 4096]).status_code != 413


def test_a_draft_model_named_in_a_section_is_counted_in_the_estimate(shared: Shared) -> None:
    shared.use("settings:\n  memory_budget: 1GiB\n")
    assert shared.chat("keep").status_code == 200
    alone = shared.daemon.ps()["keep"]["estimated_bytes"]
    shared.use("settings:\n  memory_budget: 1GiB\nmodels:\n  keep:\n    draft_model: sma\n")
    # 600 MiB + the 100 MiB draft fit: loaded with it, its bytes in ps and the worker's argv.
    assert shared.chat("keep").status_code == 200
    row = shared.daemon.ps()["keep"]
    assert row["estimated_bytes"] == alone + (100 << 20)
    assert row["options"]["draft_model"] == "small"
    assert row["options"]["draft_bytes"] == 100 << 20
    assert _worker_options(row)["draft_model"] == "small"
    status = shared.daemon.client().get("/api/admin/status").json()
    assert status["used_bytes"] == alone + (100 << 20)
    # 600 MiB + a 600 MiB draft do not fit 1 GiB, though the model alone would.
    shared.use("settings:\n  memory_budget: 1GiB\nmodels:\n  keep:\n    draft_model: other\n")
    refused = shared.chat("keep")
    assert refused.status_code == 503, refused.text
    assert shared.daemon.ps() == {}
