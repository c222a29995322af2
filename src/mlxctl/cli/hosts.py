"""`--all` for `list` and `ps`: this host's rows and every up peer's, each named
`model@host` (the daemon's `GET /api/admin/peers`); a peer that is down is named on
stderr."""

from __future__ import annotations

from typing import Any

import click

from mlxctl.cli.output import err_console
from mlxctl.client import DaemonClient

all_option = click.option(
    "--all", "every_host", is_flag=True, help="Every host's: this daemon's and its peers'."
)


def on_every_host(local: list[dict[str, Any]], name: str, rows: str) -> list[dict[str, Any]]:
    """`local` rows and each up peer's `rows` ("models" or "loaded"), their `name` field
    as `name@host`, with a `host` field."""
    with DaemonClient.from_settings() as client:
        data = client.peers()
    me = data["host"]
    found = [{**row, name: f"{row[name]}@{me}", "host": me} for row in local]
    for peer in data["peers"]:
        if not peer["up"]:
            err_console.print(f"peer {peer['name']} ({peer['url']}) is down: {peer['error']}")
            continue
        host = peer["name"]
        found += [{**row, name: f"{row[name]}@{host}", "host": host} for row in peer[rows]]
    return found
