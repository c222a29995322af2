"""The `mlxctl` entry point: the command group and the one place errors are printed."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from mlxctl import __version__
from mlxctl.cli.bench import bench
from mlxctl.cli.config import config, settings_cmd
from mlxctl.cli.daemon import load, ps, serve, status, stop, unload
from mlxctl.cli.dev import dev
from mlxctl.cli.gateway import gateway
from mlxctl.cli.mcp import mcp
from mlxctl.cli.models import init, list_models, register, rm, show
from mlxctl.cli.output import err_console
from mlxctl.cli.registry import registry
from mlxctl.cli.run import run
from mlxctl.cli.service import service
from mlxctl.cli.slots import SLOT_COMMANDS
from mlxctl.cli.store import STORE_COMMANDS
from mlxctl.cli.worker import worker
from mlxctl.errors import MlxctlError
from mlxctl.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlxctl")
def cli() -> None:
    """mlxctl: run and manage local LLMs on MLX."""


for command in (
    init, list_models, show, rm, register, registry, dev, worker,
    serve, run, bench, ps, load, unload, stop, status, gateway, mcp, service,
    config, settings_cmd,
    *STORE_COMMANDS, *SLOT_COMMANDS,
):  # fmt: skip
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; known errors become one line on stderr and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="mlxctl", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except MlxctlError as e:
        if _debug():
            raise
        err_console.print(f"[red]error:[/red] {escape(e.message)}")
        if e.hint:
            err_console.print(f"  {escape(e.hint)}")
        sys.exit(e.exit_code)
    sys.exit(0)


def _debug() -> bool:
    # A bad config file is itself the error being printed: it must not hide it.
    try:
        return Settings.from_env().debug
    except MlxctlError:
        return False


if __name__ == "__main__":
    main()
