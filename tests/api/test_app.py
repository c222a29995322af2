"""The app in-process over a recording fake factory: draining, health, status shape."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from mlxctl.api.app import create_app
from mlxctl.registry import ModelRecord
from mlxctl.scheduler import SchedulerConfig
from mlxctl.settings import Settings
from tests.scheduler.fakes import RecordingFactory


def test_draining_refuses_new_requests_with_503(
    register: Callable[..., ModelRecord],
) -> None:
    register("a", size_bytes=1000)
    factory = RecordingFactory()
    config = SchedulerConfig(budget=10**9, budget_text="MLXCTL_MEMORY_BUDGET=1GB")
    app = create_app(Settings.from_env(), worker_factory=factory, config=config)
    with TestClient(app, base_url="http://127.0.0.1:11500") as client:
        assert client.get("/health").json()["status"] == "ok"
        status = client.get("/api/admin/status").json()
        assert status["budget"] == "MLXCTL_MEMORY_BUDGET=1GB" and status["models"] == []
        app.state.draining = True
        refused = client.post("/v1/chat/completions", json={"model": "a", "messages": []})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "shutting_down"
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "draining"
    assert factory.log == []
