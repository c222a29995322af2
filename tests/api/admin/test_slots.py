"""The slots admin API contract: shapes, one clear error per mistake, nothing changed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlxctl.registry import open_registry
from mlxctl.slots.table import resolve_slot
from tests.api.conftest import Daemon, StartDaemon
from tests.cli.runner import Run
from tests.slots.conftest import add_model, base_port, slot_env  # noqa: F401


def error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return str(body["error"]["message"])


@pytest.fixture
def daemon(start_daemon: StartDaemon, slot_env: dict[str, str], tmp_path: Path) -> Daemon:  # noqa: F811
    add_model("one", tmp_path / "one", repo_id="org/One")
    add_model("two", tmp_path / "two")
    add_model("oss", tmp_path / "oss", model_type="gpt_oss")
    return start_daemon(env=slot_env)


def test_slot_shape_and_errors(daemon: Daemon, slot_env: dict[str, str]) -> None:  # noqa: F811
    base = base_port(slot_env)
    client = daemon.client()
    rows = client.get("/api/admin/slots").json()["slots"]
    assert [(r["port"], r["alias"]) for r in rows] == [
        (base + i, a) for i, a in enumerate(["alpha", "beta", "gamma", "delta"])
    ]
    assert rows[0] == {"port": base, "alias": "alpha", "desired": None, "live": None, "drift": []}

    loaded = client.post("/api/admin/slots/load", json={"model": "one", "slot": "alpha"})
    assert loaded.status_code == 200, loaded.text
    slot = loaded.json()
    assert slot["desired"] == "one" and slot["drift"] == []
    assert set(slot["live"]) == {"pid", "model", "started_at", "healthy"}

    cases = [
        ({"model": "two", "slot": base + 9}, 400, "is not a slot: slots are ports"),
        ({"model": "two", "slot": "nope"}, 400, "use a port"),
        ({"model": "two", "slot": base}, 409, "is assigned to 'one'"),
        ({"model": "one", "slot": "beta"}, 409, "already on slot"),
        ({"model": "ghost", "slot": "beta"}, 404, "mlxctl pull ghost"),
        ({"model": "two"}, 400, "'slot' is required"),
    ]
    for body, status, message in cases:
        response = client.post("/api/admin/slots/load", json=body)
        assert response.status_code == status, (body, response.text)
        assert message in error(response)
    after = client.get("/api/admin/slots").json()["slots"]
    assert [r["desired"] for r in after] == ["one", None, None, None]
    registry = open_registry()
    assert registry.get("two").port is None  # type: ignore[union-attr]
    registry.db.close()

    refused = client.post("/api/admin/slots/unload-all", json={})
    assert refused.status_code == 400 and "confirm" in error(refused)
    assert client.get("/api/admin/slots").json()["slots"][0]["desired"] == "one"
    done = client.post("/api/admin/slots/unload-all", json={"confirm": True})
    [unloaded] = done.json()["unloaded"]
    assert unloaded["slot"] == base and unloaded["model"] == "one"
    assert isinstance(unloaded["stopped_pid"], int)


def test_verify_flags_gpt_oss_without_harmony(
    daemon: Daemon,
    slot_env: dict[str, str],  # noqa: F811
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLXCTL_HOST", daemon.url)
    client = daemon.client()
    assert client.get("/api/admin/slots/verify").json() == {"ok": True, "problems": []}
    assert client.post("/api/admin/slots/load", json={"model": "oss", "slot": "gamma"}).is_success
    result = client.get("/api/admin/slots/verify", params={"strict": "0"}).json()
    assert result["ok"] is False
    texts = [p["problem"] for p in result["problems"]]
    assert all(
        p["slot"] == base_port(slot_env) + 2 and p["model"] == "oss" for p in result["problems"]
    )
    assert any("chat template" in t for t in texts)
    assert any("tool_call_parser=harmony" in t for t in texts)
    assert any("reasoning_parser=harmony" in t for t in texts)
    cli = run("verify")
    assert cli.code == 1 and "harmony" in cli.out
    # The fake worker writes no audit line: a warning only --strict counts.
    strict = client.get("/api/admin/slots/verify", params={"strict": "1"}).json()
    assert any("audit" in p["problem"] for p in strict["problems"])


def test_strict_setting_refuses_to_start(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    add_model("oss", tmp_path / "oss", model_type="gpt_oss")
    daemon = start_daemon(env={**slot_env, "MLXCTL_SLOT_STRICT": "1"})
    response = daemon.client().post("/api/admin/slots/load", json={"model": "oss", "slot": 0})
    assert response.status_code == 400 and "not a slot" in error(response)
    port = base_port(slot_env)
    response = daemon.client().post("/api/admin/slots/load", json={"model": "oss", "slot": port})
    assert response.status_code == 400 and "MLXCTL_SLOT_STRICT" in error(response)
    assert daemon.client().get("/api/admin/slots").json()["slots"][0]["desired"] is None


def test_resolve_slot_needs_a_table_entry() -> None:
    from mlxctl.errors import InvalidInput
    from mlxctl.slots.table import SlotSpec

    table = [SlotSpec(9000, "a"), SlotSpec(9001, "b")]
    assert resolve_slot("b", table).port == 9001
    with pytest.raises(InvalidInput, match="9000-9001"):
        resolve_slot(8999, table)


def test_load_of_an_unregistered_hf_repo_pulls_it_first(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    from mlxctl.factory import make_model
    from tests.store.hub_server import FakeHub

    hub = FakeHub()
    try:
        hub.add_repo("mlx-test/slot-qwen2", make_model(tmp_path / "m", arch="qwen2", size="tiny"))
        env = {**slot_env, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
        client = start_daemon(env=env).client()
        loaded = client.post(
            "/api/admin/slots/load", json={"model": "mlx-test/slot-qwen2", "slot": "beta"}
        )
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["desired"] == "slot-qwen2" and loaded.json()["live"]
        registry = open_registry()
        record = registry.get("slot-qwen2")
        registry.db.close()
        assert record is not None and record.source == "store"
        assert record.port == base_port(slot_env) + 1
    finally:
        hub.stop()
