"""`mlxctl service install`: run the daemon at login (launchd on macOS, systemd on Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlxctl.cli.output import console
from mlxctl.registry.db import private_dir
from mlxctl.service import install as install_plan
from mlxctl.service import mlxctl_executable, plan_service, service_env
from mlxctl.settings import Settings


@click.group()
def service() -> None:
    """Start `mlxctl serve` automatically at login."""


@service.command("install")
@click.option("--print", "print_only", is_flag=True, help="Print the file instead of writing it.")
def install(print_only: bool) -> None:
    """Write the launchd agent (macOS) or systemd user unit (Linux) for `mlxctl serve`."""
    settings = Settings.from_env()
    plan = plan_service(
        sys.platform,
        Path.home(),
        mlxctl_executable(),
        service_env(settings),
        settings.logs_dir,
    )
    if print_only:
        click.echo(plan.text, nl=False)
        return
    private_dir(settings.logs_dir)  # a fresh MLXCTL_HOME is its owner's only
    install_plan(plan)
    console.print(f"Wrote {plan.path}")
    console.print(f"Enable it now and at every login with:\n  {plan.enable}")
