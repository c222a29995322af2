"""The MCP tools against a real `mlxctl serve` with its slots (no model loaded)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client.session import ClientSession

from tests.api.conftest import StartDaemon
from tests.gateway.conftest import free_port
from tests.mcp.stub_daemon import StubDaemon
from tests.mcp.test_server import payload, run_session

pytestmark = pytest.mark.slow


def test_slot_status_and_unload_all_through_the_real_daemon(start_daemon: StartDaemon) -> None:
    base = free_port()
    env = {
        "MLXCTL_SLOT_BASE_PORT": str(base),
        "MLXCTL_SLOT_ALIASES": "alpha,beta",
        "MLXCTL_SLOT_RECONCILE_INTERVAL": "0",
    }
    daemon = start_daemon(env=env)
    seen: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        status = await session.call_tool("slot_status", {})
        assert not status.is_error, status.content
        seen["slots"] = payload(status)["slots"]
        done = await session.call_tool("unload_all", {"confirm": True})
        assert not done.is_error, done.content
        seen["unload_all"] = payload(done)
        memory = await session.call_tool("memory_status", {})
        assert not memory.is_error, memory.content
        seen["memory"] = payload(memory)

    run_session(StubDaemon(url=daemon.url), body)
    assert [(s["port"], s["alias"]) for s in seen["slots"]] == [(base, "alpha"), (base + 1, "beta")]
    assert all(s["live"] is None for s in seen["slots"])
    assert "unloaded" in seen["unload_all"]
    assert seen["memory"]["budget_bytes"] > 0
