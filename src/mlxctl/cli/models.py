"""Model commands: init, list, show, rm, register.

Each runs its `mlxctl.operations.models` operation through `cli/backend.py` (the
daemon when one answers, else locally) and prints the data it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from mlxctl.cli.backend import backend, path_arg
from mlxctl.cli.hosts import all_option, on_every_host
from mlxctl.cli.output import (
    console,
    human_count,
    print_fields,
    print_json,
    print_table,
)
from mlxctl.operations import models
from mlxctl.operations.models import ModelArgs, NoArgs, RegisterArgs, RmArgs
from mlxctl.units import human_bytes

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command()
@json_option
def init(as_json: bool) -> None:
    """Register every MLX model found in the Hugging Face cache (safe to re-run)."""
    report = backend().run(models.INIT, NoArgs())
    if as_json:
        print_json({k: v for k, v in report.items() if k != "missing_paths"})
        return
    console.print(f"Scanned {report['cache_dir']}", markup=False)
    for record in report["added"]:
        console.print(f"  [green]added[/green]    {escape(record['slug'])}  ({record['repo_id']})")
    for skipped in report["skipped"]:
        line = f"{skipped['repo_id']}: {skipped['reason']}"
        console.print(f"  [yellow]skipped[/yellow]  {escape(line)}")
    for slug, path in report["missing_paths"].items():
        console.print(f"  [red]missing[/red]  {escape(f'{slug}: {path} is gone')}")
    for warning in report["warnings"]:
        console.print(f"  [yellow]warning[/yellow]  {escape(warning)}")
    console.print(
        f"{len(report['added'])} added, {len(report['unchanged'])} already registered, "
        f"{len(report['skipped'])} skipped"
    )


@click.command("list")
@json_option
@all_option
def list_models(as_json: bool, every_host: bool) -> None:
    """List registered models (with --all, every peer's too, as model@host)."""
    records = backend().run(models.LIST, NoArgs())["models"]
    if every_host:
        records = on_every_host(records, "slug", "models")
    if as_json:
        print_json(records)
        return
    if not records:
        console.print("No models registered. Run `mlxctl init` to scan your Hugging Face cache.")
        return
    rows = [
        (
            r["slug"],
            r["repo_id"] or "-",
            r["format"],
            human_count(r["parameters"]),
            _quant(r),
            human_bytes(r["size_bytes"]),
            r["port"] or "",
        )
        for r in records
    ]
    print_table(["MODEL", "REPO", "FORMAT", "PARAMS", "QUANT", "SIZE", "PORT"], rows)


def _quant(record: dict[str, Any]) -> str:
    bits, group = record["quant_bits"], record["quant_group_size"]
    return f"{bits}-bit/g{group}" if bits else "none"


@click.command()
@click.argument("model")
@click.option("--modelfile", is_flag=True, help="Print the ModelSpec that builds this model.")
@json_option
def show(model: str, modelfile: bool, as_json: bool) -> None:
    """Show every field of a model, its capabilities and sizes."""
    if modelfile:
        text = backend().run(models.MODELFILE, ModelArgs(model=model))["modelfile"]
        click.echo(text, nl=False)
        return
    data = backend().run(models.SHOW, ModelArgs(model=model))
    if as_json:
        print_json(data)
        return
    pairs: list[tuple[str, Any]] = [
        (k, v) for k, v in data.items() if k not in ("extra", "capabilities", "options")
    ]
    pairs = [
        (
            k,
            human_bytes(v) + f" ({v} bytes)"
            if k in ("size_bytes", "kv_bytes_full_context") and v
            else v,
        )
        for k, v in pairs
    ]
    pairs.append(("capabilities", ", ".join(data["capabilities"])))
    options = data["options"]
    pairs.append(("preset", options.pop("preset") or "-"))
    set_options = {k: v for k, v in options.items() if v not in (None, False, {}, [], 0)}
    pairs.append(("options", ", ".join(f"{k}={v}" for k, v in set_options.items())))
    print_fields(pairs)


@click.command()
@click.argument("model")
@click.option(
    "--dry-run", is_flag=True, help="Show what would be removed and freed; change nothing."
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def rm(model: str, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove a model: unload it, unregister it and delete the files mlxctl owns."""
    where = backend()
    plan = where.run(models.RM, RmArgs(model=model, dry_run=True))
    if as_json and dry_run:
        print_json({k: v for k, v in plan.items() if k not in ("dry_run", "removed", "stopped")})
        return
    console.print(f"Model {plan['model']} ({plan['cache_path']})", markup=False)
    for path in plan["deletes"]:
        console.print(f"  delete  {path}", markup=False)
    for path in plan["kept"]:
        console.print(f"  keep    {path} (another snapshot or tag uses it)", markup=False)
    for note in plan["notes"]:
        console.print(f"  note    {note}", markup=False)
    if plan["blocked_by"]:
        console.print(f"  blocked: shares files with {', '.join(plan['blocked_by'])}", markup=False)
    console.print(f"Would free {human_bytes(plan['freed_bytes'])}")
    if dry_run:
        return
    if not yes and not click.confirm("Remove it?", default=False):
        raise click.exceptions.Abort()
    done = where.run(models.RM, RmArgs(model=plan["model"], confirm=True))
    if done["stopped"]:
        console.print(f"Unloaded {plan['model']}: {', '.join(done['stopped'])}", markup=False)
    console.print(f"Removed {plan['model']}, freed {human_bytes(done['freed_bytes'])}")


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--slug", help="Name to register it under (default: the folder name).")
@click.option("--port", type=int, help="Port assignment (8100-8109 for slots).")
@click.option(
    "--command",
    help="Serve it with this OpenAI-compatible server instead of mlxctl's worker; "
    "{model} and {port} are filled in (e.g. 'python -m mlx_lm server --model {model} "
    "--port {port}').",
)
def register(path: Path, slug: str | None, port: int | None, command: str | None) -> None:
    """Register a model folder kept outside the Hugging Face cache.

    With a daemon, PATH is a folder on the daemon's machine (a relative one is made
    absolute here first).
    """
    args = RegisterArgs(path=path_arg(str(path)), slug=slug, port=port, command=command)
    record = backend().run(models.REGISTER, args)
    console.print(f"Registered {record['slug']} ({record['cache_path']})", markup=False)
