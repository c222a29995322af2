"""The registry and store admin routes on a real daemon: contract, errors, rm unloads first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from mlxctl.operations import OPERATIONS
from mlxctl.registry import open_registry
from tests.api.conftest import Daemon, StartDaemon
from tests.cli.runner import Run
from tests.slots.conftest import add_model, base_port, slot_env  # noqa: F401


def error(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert {"message", "type", "param", "code"} <= set(body["error"])
    return dict(body["error"])


@pytest.fixture
def daemon(start_daemon: StartDaemon, slot_env: dict[str, str], tmp_path: Path) -> Daemon:  # noqa: F811
    add_model("one", tmp_path / "one", repo_id="org/One", tool_call_parser="qwen3_moe")
    add_model("two", tmp_path / "two")
    return start_daemon(env=slot_env)


def test_every_operation_has_its_route(daemon: Daemon) -> None:
    client = daemon.client()
    for op in OPERATIONS:
        # An empty body: GET routes answer, POST routes name their first required field.
        response = client.request(op.method, op.path, json=None if op.method == "GET" else {})
        assert response.status_code in (200, 400), (op.path, response.text)
        if response.status_code == 400:
            assert "is required" in error(response)["message"], op.path


def test_reads_and_edits_with_clear_errors(daemon: Daemon) -> None:
    client = daemon.client()
    models = client.get("/api/admin/models").json()["models"]
    assert [m["slug"] for m in models] == ["one", "two"]
    shown = client.post("/api/admin/models/show", json={"model": "org/One"}).json()
    assert shown["slug"] == "one" and "tools" in shown["capabilities"]

    missing = client.post("/api/admin/models/show", json={"model": "onee"})
    assert missing.status_code == 404
    assert error(missing)["hint"] == "did you mean: one, org/One?"  # the next step, apart
    extra = client.post("/api/admin/models/show", json={"model": "one", "verbose": True})
    assert extra.status_code == 400
    assert error(extra)["message"] == "/api/admin/models/show does not take the field 'verbose'"
    not_json = client.post(
        "/api/admin/models/show", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and error(not_json)["code"] == "invalid_json"

    # Parser names as users write them; unknown ones are refused and change nothing.
    body = {"model": "one", "tool_call_parser": "harmony", "reasoning_parser": "gpt-oss"}
    assert client.post("/api/admin/registry/set", json=body).status_code == 200
    bad = client.post("/api/admin/registry/set", json={"model": "one", "tool_call_parser": "x9"})
    assert bad.status_code == 400 and "unknown tool call parser 'x9'" in error(bad)["message"]
    assert "qwen3_moe" in error(bad)["hint"]
    cleared = client.post(
        "/api/admin/registry/set", json={"model": "one", "reasoning_parser": None}
    )
    assert cleared.json()["reasoning_parser"] is None
    assert cleared.json()["tool_call_parser"] == "harmony"  # fields not sent stay

    exported = client.get("/api/admin/registry").json()
    assert exported["version"] == 1 and set(exported["models"]) == {"one", "two"}
    text = json.dumps({"version": 1, "models": {"one": {"cache_path": "/x", "port": "p"}}})
    refused = client.post("/api/admin/registry/import", json={"text": text, "source": "r.json"})
    assert refused.status_code == 400
    assert error(refused)["message"] == "r.json:1: models.one.port: 'p' is not an integer"
    assert client.get("/api/admin/registry").json() == exported

    # A stream that fails before its first progress line still gets a real status.
    gone = client.post("/api/admin/store/push", json={"model": "ghost", "target": "h:1/r:t"})
    assert gone.status_code == 404 and "ghost" in error(gone)["message"]


def test_rm_asks_for_confirmation_and_unloads_first(
    daemon: Daemon,
    slot_env: dict[str, str],  # noqa: F811
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = daemon.client()
    refused = client.post("/api/admin/models/rm", json={"model": "one"})
    assert refused.status_code == 400 and "confirm=true" in error(refused)["message"]
    plan = client.post("/api/admin/models/rm", json={"model": "one", "dry_run": True}).json()
    assert plan["dry_run"] is True and plan["removed"] is False and plan["deletes"] == []

    base = base_port(slot_env)
    assert client.post("/api/admin/load", json={"model": "one"}).status_code == 200
    loaded = client.post("/api/admin/slots/load", json={"model": "one", "slot": "beta"})
    assert loaded.status_code == 200, loaded.text
    pid = loaded.json()["live"]["pid"]
    # The slot's worker replaced the on-demand one: one model, one worker.
    assert daemon.ps()["one"]["pid"] == pid

    monkeypatch.setenv("MLXCTL_HOST", daemon.url)
    removed = run("rm", "one", "-y")
    assert removed.code == 0, removed.err
    assert f"Unloaded one: slot beta on port {base + 1}\n" in removed.out
    assert "Removed one" in removed.out
    assert "one" not in daemon.ps()
    slots = {s["alias"]: s for s in client.get("/api/admin/slots").json()["slots"]}
    assert slots["beta"]["desired"] is None and slots["beta"]["live"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    registry = open_registry()
    assert [r.slug for r in registry.list()] == ["two"]
    registry.db.close()


def test_stop_takes_a_slot_alias_or_port(
    daemon: Daemon,
    slot_env: dict[str, str],  # noqa: F811
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = daemon.client()
    for slot, model in (("alpha", "one"), ("beta", "two")):
        response = client.post("/api/admin/slots/load", json={"model": model, "slot": slot})
        assert response.status_code == 200, response.text
    monkeypatch.setenv("MLXCTL_HOST", daemon.url)
    base = base_port(slot_env)
    by_alias = run("stop", "alpha")
    assert by_alias.code == 0 and f"Unloaded one from slot {base} (alpha)" in by_alias.out
    by_port = run("stop", str(base + 1))
    assert by_port.code == 0 and f"Unloaded two from slot {base + 1} (beta)" in by_port.out
    assert all(s["live"] is None for s in client.get("/api/admin/slots").json()["slots"])
