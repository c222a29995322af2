"""One slot on the real `mlxctl worker` with a tiny model: its audit line is what verify reads."""

from __future__ import annotations

import os
from pathlib import Path

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from tests.api.conftest import StartDaemon
from tests.slots.conftest import base_port


def test_verify_reads_the_real_workers_audit(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],
    tmp_path: Path,
) -> None:
    registry = open_registry()
    register_path(registry, make_model(tmp_path / "tiny", arch="qwen2", size="tiny"), slug="tiny")
    registry.db.close()
    env = {**slot_env, "MLXCTL_WORKER_COMMAND": ""}  # the default: this Python's mlxctl worker
    daemon = start_daemon(env=env)
    client = daemon.client()
    port = base_port(slot_env)
    loaded = client.post("/api/admin/slots/load", json={"model": "tiny", "slot": port})
    assert loaded.status_code == 200, loaded.text
    log = Path(os.environ["MLXCTL_HOME"]) / "logs" / f"slot-{port}.log"
    assert '"event": "worker.ready"' in log.read_text()
    assert client.get("/api/admin/slots/verify?strict=1").json() == {"ok": True, "problems": []}

    # The registry changes under a running worker: verify says the worker is stale.
    registry = open_registry()
    registry.update("tiny", tool_call_parser="mistral")
    registry.db.close()
    result = client.get("/api/admin/slots/verify").json()
    assert result["ok"] is False
    assert "tool_call_parser: worker uses" in result["problems"][0]["problem"]
