"""The daemon tools (mlx.load/unload/ps/pull/rm/reconcile/verify) through the SDK's client,
against a real `mlxctl serve` with fake workers: confirmation by elicitation, dry runs,
and pull progress as MCP progress notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.types import ElicitRequestParams, ElicitResult, TextContent

from mlxctl.factory import make_model
from mlxctl.mcp.server import DESTRUCTIVE_TOOLS, READ_TOOLS, WRITE_TOOLS
from tests.api.conftest import Daemon, StartDaemon
from tests.mcp.stub_daemon import StubDaemon
from tests.mcp.test_server import payload, run_session
from tests.slots.conftest import add_model, slot_env  # noqa: F401
from tests.store.hub_server import FakeHub

pytestmark = pytest.mark.slow
REPO = "mlx-test/mcp-pulled"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.add_repo(REPO, make_model(tmp_path_factory.mktemp("hub") / "m", size="tiny"))
    yield hub
    hub.stop()


@pytest.fixture
def daemon(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],  # noqa: F811
    hub: FakeHub,
    tmp_path: Path,
) -> StubDaemon:
    add_model("one", tmp_path / "one")
    add_model("two", tmp_path / "two")
    env = {**slot_env, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
    running: Daemon = start_daemon(env=env)
    return StubDaemon(url=running.url)


class Asker:
    """The user behind the client: answers each confirmation with `answer`."""

    def __init__(self) -> None:
        self.answer = "decline"
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(params.message)
        content = {"confirm": True} if self.answer == "accept" else None
        return ElicitResult(action=self.answer, content=content)  # type: ignore[arg-type]


def test_the_seed_names_and_read_only(daemon: StubDaemon) -> None:
    assert {"mlx.load", "mlx.unload"} <= set(WRITE_TOOLS)
    assert set(DESTRUCTIVE_TOOLS) >= {"mlx.unload", "mlx.rm", "mlx.reconcile", "unload_all"}
    seen: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        listed = (await session.list_tools()).tools
        seen["names"] = {t.name for t in listed}
        seen["schemas"] = {t.name: t.input_schema["properties"] for t in listed}

    run_session(daemon, body)
    assert seen["names"] == set(READ_TOOLS) | set(WRITE_TOOLS)
    for name in DESTRUCTIVE_TOOLS:  # every destructive tool: a dry run and a confirmation
        assert {"dry_run", "confirm"} <= set(seen["schemas"][name]), name
    run_session(daemon, body, "--read-only")
    assert seen["names"] == set(READ_TOOLS)


def test_load_ps_unload_rm_ask_first_and_dry_run(daemon: StubDaemon) -> None:
    asker = Asker()
    seen: dict[str, Any] = {}

    async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
        result = await session.call_tool(name, arguments)
        assert not result.is_error, result.content
        return payload(result)

    async def body(session: ClientSession) -> None:
        assert (await call(session, "mlx.load", model="one"))["state"] == "ready"
        assert [m["model"] for m in (await call(session, "mlx.ps"))["models"]] == ["one"]
        dry = await call(session, "mlx.unload", model="one", dry_run=True)
        assert dry["dry_run"] is True and dry["loaded"]["model"] == "one"
        asker.answer = "decline"
        assert (await call(session, "mlx.unload", model="one"))["declined"] is True
        assert [m["model"] for m in (await call(session, "mlx.ps"))["models"]] == ["one"]
        asker.answer = "accept"
        assert (await call(session, "mlx.unload", model="one"))["unloaded"] is True
        assert (await call(session, "mlx.ps"))["models"] == []

        loaded = await call(session, "mlx.load", model="two", slot="beta")
        assert loaded["live"]["model"] == "two"
        assert [s["alias"] for s in (await call(session, "mlx.ps"))["slots"]] == ["beta"]
        assert (await call(session, "mlx.verify"))["ok"] is True  # (fake workers: no audit)
        plan = await call(session, "mlx.rm", model="two", dry_run=True)
        assert plan["dry_run"] is True and plan["model"] == "two"
        seen["rm"] = await call(session, "mlx.rm", model="two")  # asked, accepted
        seen["models"] = [m["id"] for m in (await call(session, "list_models"))["models"]]
        seen["slots"] = await call(session, "slot_status")
        assert (await call(session, "mlx.reconcile", dry_run=True)) == {
            "dry_run": True,
            "drift": [],
        }
        seen["reconcile"] = await call(session, "mlx.reconcile")

    run_session(daemon, body, elicitation_callback=asker)
    assert asker.questions[:2] == ["Unload one?", "Unload one?"]
    assert asker.questions[2].startswith("Remove two and delete 0 path(s)?")
    assert seen["rm"]["removed"] is True and seen["rm"]["stopped"][0].startswith("slot beta")
    assert seen["models"] == ["one"]
    assert all(s["live"] is None for s in seen["slots"]["slots"])
    assert seen["reconcile"]["unfixable"] == []


def test_without_elicitation_a_destructive_tool_needs_confirm(daemon: StubDaemon) -> None:
    async def body(session: ClientSession) -> None:
        refused = await session.call_tool("mlx.rm", {"model": "one"})
        assert refused.is_error
        block = refused.content[0]
        assert isinstance(block, TextContent) and "confirm=true" in block.text
        listed = payload(await session.call_tool("list_models", {}))["models"]
        assert [m["id"] for m in listed] == ["one", "two"]  # nothing was removed
        done = await session.call_tool("mlx.rm", {"model": "one", "confirm": True})
        assert not done.is_error and payload(done)["removed"] is True

    run_session(daemon, body)


def test_pull_reports_progress_notifications(daemon: StubDaemon) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    seen: dict[str, Any] = {}

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def body(session: ClientSession) -> None:
        result = await session.call_tool(
            "mlx.pull", {"reference": REPO}, progress_callback=on_progress
        )
        assert not result.is_error, result.content
        seen["pulled"] = payload(result)

    run_session(daemon, body)
    assert seen["pulled"]["model"] == "mcp-pulled" and seen["pulled"]["reused"] == []
    assert len(progress) >= 3
    last_done, last_total, _ = progress[-1]
    assert last_total and last_done == last_total
    assert progress[0][2] == f"{REPO}: started" and progress[-1][2] == f"{REPO}: downloaded"
