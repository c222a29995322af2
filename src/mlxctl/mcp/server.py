"""mlxctl as an MCP server over stdio, on the official `mcp` SDK.

Every tool is a call to the daemon through `mlxctl.client` (mcp → client → HTTP),
run in a thread because the client blocks and a slot load can take minutes.
A daemon error becomes a tool error (`is_error`) carrying its message and hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from mlxctl import __version__
from mlxctl.client import DaemonClient
from mlxctl.client.catalog import registered_models
from mlxctl.errors import MlxctlError

T = TypeVar("T")
READ_TOOLS = ("list_models", "slot_status", "memory_status", "loaded_models")
WRITE_TOOLS = ("load_slot", "unload_slot", "unload_all")

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
# load_slot pulls an `org/repo` nobody registered from Hugging Face: it reaches the internet.
_PULLING = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)


async def _daemon(call: Callable[[DaemonClient], T]) -> T:
    def run() -> T:
        with DaemonClient.from_settings() as client:
            return call(client)

    try:
        return await anyio.to_thread.run_sync(run)
    except MlxctlError as e:
        raise ToolError(f"{e.message} ({e.hint})" if e.hint else e.message) from None


def _slot(slot: str | int) -> str | int:
    # Agents often send "8100" as a string; the daemon takes a port as a number.
    return int(slot) if isinstance(slot, str) and slot.isdigit() else slot


async def list_models() -> dict[str, Any]:
    """Registered models the daemon can serve (its GET /v1/models)."""
    return {"models": await _daemon(registered_models)}


async def slot_status() -> dict[str, Any]:
    """Each slot: port, alias, desired model, live process (pid, model, healthy) and drift."""
    return {"slots": await _daemon(lambda c: c.slots())}


async def memory_status() -> dict[str, Any]:
    """The memory budget, used and free bytes, and each loaded model's memory."""
    status = await _daemon(lambda c: c.status())
    keys = ("budget", "budget_bytes", "used_bytes", "free_bytes", "measured_bytes")
    per_model = [
        {
            "model": m.get("model"),
            "estimated_bytes": m.get("estimated_bytes"),
            "measured_bytes": (m.get("measured") or {}).get("total_bytes"),
        }
        for m in status.get("models") or []
    ]
    return {**{k: status.get(k) for k in keys}, "models": per_model}


async def loaded_models() -> dict[str, Any]:
    """Models loaded on demand now: state, pid, requests in flight, memory (mlxctl ps)."""
    return {"models": await _daemon(lambda c: c.ps())}


async def load_slot(model: str, slot: str | int, force: bool = False) -> dict[str, Any]:
    """Load `model` into `slot` (alias like jerry-xl, or port like 8100) and wait until ready.

    `model` is a registered model's exact name (a prefix is refused), or a Hugging
    Face `org/repo` not registered yet, which is downloaded first (it can be many
    GB). A slot assigned to another model is always refused: unload it first.
    `force` stops an MLX server that mlxctl did not start (e.g. a hand-run
    mlx_lm.server) holding the slot's port; any other process is never stopped.
    """
    return await _daemon(lambda c: c.load_slot(model, _slot(slot), force))


async def unload_slot(slot: str | int) -> dict[str, Any]:
    """Stop the model in `slot` (alias or port) and clear its assignment."""
    return await _daemon(lambda c: c.unload_slot(_slot(slot)))


async def unload_all(confirm: bool = False) -> dict[str, Any]:
    """Stop every slot's model. Refused unless `confirm` is true."""
    if confirm is not True:
        raise ToolError("unload_all stops every slot: call it again with confirm=true")
    return await _daemon(lambda c: c.unload_all())


def create_server(*, read_only: bool = False) -> MCPServer[Any]:
    """The server with the read tools, and the mutating ones unless `read_only`."""
    server: MCPServer[Any] = MCPServer(
        name="mlxctl",
        version=__version__,
        instructions="Inspect and manage the local mlxctl model server: models, slots, memory.",
    )
    tools: list[tuple[Callable[..., Any], ToolAnnotations]] = [
        (fn, _READ) for fn in (list_models, slot_status, memory_status, loaded_models)
    ]
    if not read_only:
        tools += [(load_slot, _PULLING), (unload_slot, _WRITE), (unload_all, _WRITE)]
    for fn, hints in tools:
        server.add_tool(fn, annotations=hints)
    return server


def run_stdio(*, read_only: bool = False) -> None:
    create_server(read_only=read_only).run("stdio")
