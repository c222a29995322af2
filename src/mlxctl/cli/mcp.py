"""`mlxctl mcp`: serve mlxctl's admin tools to an MCP client over stdio."""

from __future__ import annotations

import click


@click.command("mcp")
@click.option("--read-only", is_flag=True, help="Offer only the tools that change nothing.")
def mcp(read_only: bool) -> None:
    """Run the MCP server on stdin/stdout (tools call the daemon at MLXCTL_HOST)."""
    # Imported here: the SDK is heavy, and stdout belongs to the protocol once it runs.
    from mlxctl.mcp.server import run_stdio

    run_stdio(read_only=read_only)


if __name__ == "__main__":
    mcp()
