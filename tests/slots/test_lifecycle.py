"""Slots with real processes: a real daemon, detached fake workers on the slot ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from mlxctl.registry import open_registry
from tests.cli.runner import Run
from tests.slots.conftest import Serve, add_model, base_port, slots, wait_for


def health(port: int) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    return body


def test_load_kill_reconcile_readopt(
    serve: Serve, slot_env: dict[str, str], run: Run, tmp_path: Path
) -> None:
    base = base_port(slot_env)
    add_model("one", tmp_path / "one", repo_id="org/One")
    add_model("two", tmp_path / "two")
    daemon = serve()

    # Two models on two slots: by repo id + port, by slug + alias.
    loaded = run("load", "org/One", str(base))
    assert loaded.code == 0, loaded.err
    assert f"Loaded one on slot {base} (alpha)" in loaded.out
    assert run("load", "two", "beta").code == 0
    table = slots(daemon)
    assert table[base]["desired"] == "one" and table[base]["live"]["healthy"] is True
    assert table[base + 1]["live"]["model"] == "two" and table[base + 1]["drift"] == []
    assert health(base)["model"]["id"] == "one"
    status = run("status")
    assert status.code == 0 and "alpha" in status.out and "live" in status.out
    registry = open_registry()
    assert registry.get("one").port == base  # type: ignore[union-attr]
    registry.db.close()

    # kill -9 a slot worker: drift, then reconcile restarts it.
    first = table[base]["live"]["pid"]
    os.killpg(first, signal.SIGKILL)
    wait_for(lambda: "dead worker" in slots(daemon)[base]["drift"])
    reconciled = run("reconcile", "--json")
    assert reconciled.code == 0, reconciled.out
    actions = reconciled.json()["actions"]
    assert [(a["action"], a["slot"], a["ok"]) for a in actions] == [("start", base, True)]
    table = slots(daemon)
    assert table[base]["live"]["healthy"] and table[base]["live"]["pid"] != first
    pids = {port: table[port]["live"]["pid"] for port in (base, base + 1)}

    # kill -9 the daemon: the slots keep answering; a new daemon adopts them as they are.
    daemon.stop(signal.SIGKILL)
    assert health(base)["status"] == "ok" and health(base + 1)["model"]["id"] == "two"
    again = serve()
    table = wait_for(lambda: (t := slots(again)) and all(t[p]["live"] for p in pids) and t)
    assert {port: table[port]["live"]["pid"] for port in pids} == pids
    assert all(table[port]["drift"] == [] for port in pids)
    assert run("reconcile", "--json").json()["actions"] == []

    # Unload one slot: its worker stops and the model's port is cleared.
    unloaded = run("unload", "beta")
    assert unloaded.code == 0 and f"stopped pid {pids[base + 1]}" in unloaded.out
    assert slots(again)[base + 1]["desired"] is None
    registry = open_registry()
    assert registry.get("two").port is None  # type: ignore[union-attr]
    registry.db.close()
    assert run("unload-all", "--yes").code == 0
    assert all(row["desired"] is None and row["live"] is None for row in slots(again).values())


def test_foreign_listener_is_named_and_never_killed(
    serve: Serve, slot_env: dict[str, str], run: Run, tmp_path: Path
) -> None:
    base = base_port(slot_env)
    add_model("one", tmp_path / "one")
    daemon = serve()
    port = base + 2
    foreign = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: slots(daemon)[port]["live"])
        refused = run("load", "one", "gamma")
        assert refused.code == 4
        assert f"pid {foreign.pid}" in refused.err and "http.server" in refused.err
        forced = run("load", "one", str(port), "--force")
        assert forced.code == 4 and "not an MLX server" in forced.err
        assert f"pid {foreign.pid}" in forced.err
        assert foreign.poll() is None
        assert slots(daemon)[port]["desired"] is None
        registry = open_registry()
        assert registry.get("one").port is None  # type: ignore[union-attr]
        registry.db.close()
    finally:
        foreign.kill()
        foreign.wait()


def test_force_stops_an_mlx_server_and_says_which(
    serve: Serve, slot_env: dict[str, str], run: Run, tmp_path: Path
) -> None:
    base = base_port(slot_env)
    add_model("one", tmp_path / "one")
    daemon = serve()
    port = base + 3
    stray = subprocess.Popen(
        [sys.executable, "-m", "mlxctl.supervision.fake", "stray", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (slots(daemon)[port]["live"] or {}).get("healthy"))
        assert run("load", "one", "delta").code == 4
        forced = run("load", "one", "delta", "--force")
        assert forced.code == 0, forced.err
        assert f"pid {stray.pid}" in forced.out
        assert stray.wait(10) is not None
        assert health(port)["model"]["id"] == "one"
        # A graceful daemon stop leaves slot workers serving too.
        assert daemon.stop(signal.SIGTERM) == 0
        assert health(port)["status"] == "ok"
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
