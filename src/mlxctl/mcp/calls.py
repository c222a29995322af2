"""How a tool reaches the daemon, asks before destroying, and reports progress.

`daemon(call)` runs a blocking `DaemonClient` call in a thread (a load can take
minutes); a daemon error becomes a tool error carrying its message and hint.
`confirmed(ctx, question, confirm)` is the gate of every destructive tool: true
when the caller passed `confirm=true`, else the user is asked through MCP
elicitation when the client offers it; a client without elicitation gets a tool
error that says to call again with `confirm=true` (or `dry_run=true` first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ClientCapabilities, ElicitationCapability
from pydantic import BaseModel, Field

from mlxctl.client import DaemonClient
from mlxctl.errors import MlxctlError

T = TypeVar("T")


async def daemon(call: Callable[[DaemonClient], T]) -> T:
    def run() -> T:
        with DaemonClient.from_settings() as client:
            return call(client)

    try:
        return await anyio.to_thread.run_sync(run)
    except MlxctlError as e:
        raise ToolError(f"{e.message} ({e.hint})" if e.hint else e.message) from None


class Confirmation(BaseModel):
    confirm: bool = Field(description="Yes: do it")


async def confirmed(ctx: Context[Any, Any], question: str, confirm: bool) -> bool:
    """Whether to go ahead: `confirm`, or the user's answer when the client can ask."""
    if confirm:
        return True
    asking = ClientCapabilities(elicitation=ElicitationCapability())
    if not ctx.session.check_client_capability(asking):
        raise ToolError(
            f"{question} Call again with confirm=true to do it (dry_run=true shows what "
            "it would do)."
        )
    answer = await ctx.elicit(question, Confirmation)
    return answer.action == "accept" and answer.data.confirm


def declined(question: str) -> dict[str, Any]:
    return {"done": False, "declined": True, "question": question}


class ProgressNotifier:
    """A store `Progress` that reports bytes done of all items as MCP progress.

    Called from the thread `daemon()` runs in; each report hops to the event loop.
    Reports go out when the whole moves by a percent or an item finishes.
    """

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self.ctx = ctx
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self._sent = -1

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        self.total[key], self.done[key], self.labels[key] = total or 0, done, label
        self._report(f"{label}: started")

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        self.done[key] = done
        if total is not None:
            self.total[key] = total
        whole = sum(self.total.values())
        percent = int(100 * sum(self.done.values()) / whole) if whole else 0
        if percent != self._sent:
            self._report(None)
            self._sent = percent

    def finish(self, key: str, note: str = "") -> None:
        self.done[key] = max(self.done.get(key, 0), self.total.get(key, 0))
        self._report(f"{self.labels.get(key, key)}: {note or 'done'}")

    def _report(self, message: str | None) -> None:
        done, total = sum(self.done.values()), sum(self.total.values())
        anyio.from_thread.run(self.ctx.report_progress, done, total or None, message)
