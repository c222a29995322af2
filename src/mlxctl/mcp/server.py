"""mlxctl as an MCP server over stdio, on the official `mcp` SDK.

Every tool is a call to the daemon through `mlxctl.client` (mcp → client → HTTP);
the tools themselves are in `tools.py`, the daemon calls, confirmation and progress
in `calls.py`. `mlx.load` / `mlx.unload` are the seed's names (dots are valid MCP
tool names); the rest keep the names they shipped with or take the `mlx.` prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mlxctl import __version__
from mlxctl.mcp import tools

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
_PULL = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
_DESTROY = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
# A slot load may download an unregistered `org/repo` and, with force, stop a server.
_LOAD_SLOT = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)

Tool = tuple[str, Callable[..., Any], ToolAnnotations]

READ: tuple[Tool, ...] = (
    ("list_models", tools.list_models, _READ),
    ("slot_status", tools.slot_status, _READ),
    ("memory_status", tools.memory_status, _READ),
    ("loaded_models", tools.loaded_models, _READ),
    ("mlx.ps", tools.ps, _READ),
    ("mlx.verify", tools.verify, _READ),
)
# Every destructive tool takes dry_run and confirm; loads destroy only with force.
WRITE: tuple[Tool, ...] = (
    ("mlx.load", tools.load, _WRITE),
    ("load_slot", tools.load_slot, _LOAD_SLOT),
    ("mlx.pull", tools.pull, _PULL),
    ("mlx.unload", tools.unload, _DESTROY),
    ("unload_slot", tools.unload_slot, _DESTROY),
    ("unload_all", tools.unload_all, _DESTROY),
    ("mlx.rm", tools.rm, _DESTROY),
    ("mlx.reconcile", tools.reconcile, _DESTROY),
)
READ_TOOLS = tuple(name for name, _, _ in READ)
WRITE_TOOLS = tuple(name for name, _, _ in WRITE)
DESTRUCTIVE_TOOLS = tuple(name for name, _, hints in WRITE if hints.destructive_hint)


def create_server(*, read_only: bool = False) -> MCPServer[Any]:
    """The server with the read tools, and the ones that change things unless `read_only`."""
    server: MCPServer[Any] = MCPServer(
        name="mlxctl",
        version=__version__,
        instructions="Inspect and manage the local mlxctl model server: models, slots, memory, "
        "the model store. Destructive tools take dry_run and ask for confirmation.",
    )
    for name, fn, hints in READ if read_only else READ + WRITE:
        server.add_tool(fn, name=name, annotations=hints)
    return server


def run_stdio(*, read_only: bool = False) -> None:
    create_server(read_only=read_only).run("stdio")
