"""The MCP server through the SDK's own stdio client, against a stub daemon."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from mlxctl.mcp.server import READ_TOOLS, WRITE_TOOLS
from tests.mcp.stub_daemon import StubDaemon, stub_daemon

Session = Callable[[ClientSession], Awaitable[None]]


@pytest.fixture
def daemon() -> Iterator[StubDaemon]:
    with stub_daemon() as stub:
        yield stub


def _entry() -> list[str]:
    # `mlxctl mcp` once cli/main.py registers it; the command module on its own until then.
    from mlxctl.cli.main import cli

    if "mcp" in cli.commands:
        return ["-m", "mlxctl.cli.main", "mcp"]
    return ["-m", "mlxctl.cli.mcp"]


def run_session(daemon: StubDaemon, body: Session, *args: str, **options: Any) -> None:
    """`mlxctl mcp ARGS` through the SDK's stdio client; `options` go to ClientSession
    (an `elicitation_callback` makes the client offer elicitation)."""
    env = {"MLXCTL_HOST": daemon.url, "MLXCTL_HOME": os.environ["MLXCTL_HOME"]}
    params = StdioServerParameters(command=sys.executable, args=[*_entry(), *args], env=env)

    async def main() -> None:
        with anyio.fail_after(120):
            async with (
                stdio_client(params) as (read, write),
                ClientSession(read, write, **options) as session,
            ):
                await session.initialize()
                await body(session)

    anyio.run(main)


def _text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def payload(result: Any) -> dict[str, Any]:
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(_text(result)))


def test_lists_every_tool_and_read_only_hides_the_mutating_ones(daemon: StubDaemon) -> None:
    names: dict[str, set[str]] = {}

    def lister(key: str) -> Session:
        async def body(session: ClientSession) -> None:
            names[key] = {t.name for t in (await session.list_tools()).tools}

        return body

    run_session(daemon, lister("all"))
    run_session(daemon, lister("ro"), "--read-only")
    assert names["all"] == set(READ_TOOLS) | set(WRITE_TOOLS)
    assert names["ro"] == set(READ_TOOLS)


def test_the_tool_hints_tell_the_truth(daemon: StubDaemon) -> None:
    tools: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        tools.update({t.name: t for t in (await session.list_tools()).tools})

    run_session(daemon, body)
    load = tools["load_slot"]
    # It can download any Hugging Face repo: the open world, and a destructive one.
    assert load.annotations.open_world_hint is True
    assert load.annotations.destructive_hint is True and load.annotations.read_only_hint is False
    description = " ".join(load.description.split())
    assert "always refused" in description and "mlx_lm.server" in description
    assert "exact name" in description and "downloaded" in description
    for name in ("unload_slot", "unload_all"):
        assert tools[name].annotations.open_world_hint is False


def test_read_tools_answer_from_the_daemon(daemon: StubDaemon) -> None:
    results: dict[str, dict[str, Any]] = {}

    async def body(session: ClientSession) -> None:
        for name in READ_TOOLS:
            result = await session.call_tool(name, {})
            assert not result.is_error, result.content
            results[name] = payload(result)

    run_session(daemon, body, "--read-only")
    assert [s["alias"] for s in results["slot_status"]["slots"]] == ["jerry-xl", "jerry-l"]
    assert results["slot_status"]["slots"][0]["live"]["healthy"] is True
    assert results["list_models"]["models"][0]["id"] == "tiny"
    assert results["loaded_models"]["models"][0]["pid"] == 7
    memory = results["memory_status"]
    assert (memory["budget_bytes"], memory["used_bytes"], memory["free_bytes"]) == (100, 60, 40)
    assert memory["models"] == [{"model": "tiny", "estimated_bytes": 1000, "measured_bytes": 9}]
    assert results["mlx.ps"]["slots"] == [
        {"port": 8100, "alias": "jerry-xl", "pid": 42, "model": "qwen3-4b", "started_at": 1.0,
         "healthy": True}
    ]  # fmt: skip
    assert results["mlx.ps"]["models"][0]["pid"] == 7
    assert results["mlx.verify"]["ok"] is True


def test_unload_all_needs_confirm(daemon: StubDaemon) -> None:
    async def body(session: ClientSession) -> None:
        refused = await session.call_tool("unload_all", {})
        assert refused.is_error
        assert "confirm" in _text(refused)
        assert not [c for c in daemon.calls if c[1].endswith("unload-all")]
        done = await session.call_tool("unload_all", {"confirm": True})
        assert not done.is_error, done.content

    run_session(daemon, body)
    assert ("POST", "/api/admin/slots/unload-all", {"confirm": True}) in daemon.calls


def test_slot_tools_send_the_contract_bodies(daemon: StubDaemon) -> None:
    async def body(session: ClientSession) -> None:
        loaded = await session.call_tool("load_slot", {"model": "qwen3-4b", "slot": "8101"})
        assert not loaded.is_error, loaded.content
        refused = await session.call_tool("unload_slot", {"slot": "jerry-l"})
        assert refused.is_error and "confirm=true" in _text(refused)
        await session.call_tool("unload_slot", {"slot": "jerry-l", "confirm": True})
        missing = await session.call_tool("load_slot", {"model": "m", "slot": "nope"})
        assert missing.is_error
        assert "no slot 'nope'" in _text(missing)

    run_session(daemon, body)
    assert (
        "POST",
        "/api/admin/slots/load",
        {"model": "qwen3-4b", "slot": 8101, "force": False},
    ) in (daemon.calls)
    assert ("POST", "/api/admin/slots/unload", {"slot": "jerry-l"}) in daemon.calls


def test_a_missing_daemon_is_a_tool_error_not_a_crash(daemon: StubDaemon) -> None:
    daemon.url = "http://127.0.0.1:9"  # discard port: nothing listens

    async def body(session: ClientSession) -> None:
        result = await session.call_tool("slot_status", {})
        assert result.is_error
        assert "no mlxctl daemon" in _text(result)

    run_session(daemon, body)
