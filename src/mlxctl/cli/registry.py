"""`mlxctl registry`: export, import and edit the registry itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlxctl.cli.backend import backend, path_arg
from mlxctl.cli.output import console
from mlxctl.errors import InvalidInput
from mlxctl.operations import registry as registry_ops
from mlxctl.operations.models import NoArgs
from mlxctl.operations.registry import ImportArgs, SetArgs
from mlxctl.registry.exchange import format_registry


@click.group()
def registry() -> None:
    """Export, import and edit registry entries."""


@registry.command("export")
@click.option(
    "--json", "as_json", is_flag=True, default=True, help="registry.json format (default)."
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to a file.")
def export_cmd(as_json: bool, output: Path | None) -> None:
    """Write the registry as the seeds' registry.json."""
    text = format_registry(backend().run(registry_ops.EXPORT, NoArgs()))
    if output is None:
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)  # atomic: a reader never sees half a file
    console.print(f"Wrote {output}")


@registry.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--replace", is_flag=True, help="Drop models that are not in the file.")
@click.option(
    "--allow-commands",
    is_flag=True,
    help="Accept models served by an external command (extra.command runs as a program).",
)
def import_cmd(file: Path, replace: bool, allow_commands: bool) -> None:
    """Read a registry.json; a bad file changes nothing.

    The file is trusted no more than a local edit: templates and adapters must be
    in the store, model paths absolute, parsers known, and external commands
    need --allow-commands.
    """
    try:
        text = file.read_text() if str(file) != "-" else sys.stdin.read()
    except OSError as e:
        raise InvalidInput(f"cannot read {file}: {e.strerror}") from None
    args = ImportArgs(text=text, source=str(file), replace=replace, allow_commands=allow_commands)
    count = backend().run(registry_ops.IMPORT, args)["imported"]
    console.print(f"Imported {count} model(s) from {file}", markup=False)


@registry.command("set")
@click.argument("model")
@click.option("--slug", help="Rename the model.")
@click.option("--port", type=int, help="Assign a port (one port, one model).")
@click.option("--no-port", is_flag=True, help="Clear the port assignment.")
@click.option(
    "--chat-template",
    help="Path to a chat template file, on the daemon's machine (empty string clears).",
)
@click.option(
    "--tool-call-parser",
    help="Tool-call parser: harmony, hermes, qwen3_moe, an mlx-lm module... (empty clears).",
)
@click.option(
    "--reasoning-parser", help="Reasoning parser: harmony, qwen3, deepseek_r1... (empty clears)."
)
def set_cmd(
    model: str,
    slug: str | None,
    port: int | None,
    no_port: bool,
    chat_template: str | None,
    tool_call_parser: str | None,
    reasoning_parser: str | None,
) -> None:
    """Change fields of a registered model.

    Parser names may be written as mlx-lm, vLLM or mlx-openai-server write them
    (harmony, qwen3_moe, hermes, deepseek_r1, ...); an unknown one is refused here.
    """
    changes: dict[str, Any] = {}
    if slug is not None:
        changes["slug"] = slug
    if port is not None and no_port:
        raise InvalidInput("--port and --no-port contradict each other")
    if port is not None:
        changes["port"] = port
    if no_port:
        changes["port"] = None
    for name, value in (
        ("chat_template", chat_template),
        ("tool_call_parser", tool_call_parser),
        ("reasoning_parser", reasoning_parser),
    ):
        if value is not None:
            changes[name] = (path_arg(value) if name == "chat_template" else value) or None
    if not changes:
        raise InvalidInput("nothing to change", hint="see `mlxctl registry set --help`")
    updated = backend().run(registry_ops.SET, SetArgs(model=model, **changes))
    console.print(f"Updated {updated['slug']}", markup=False)
