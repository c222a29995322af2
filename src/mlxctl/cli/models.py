"""Model commands: init, list, show, rm, register."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from mlxctl import inventory
from mlxctl.capabilities import capabilities
from mlxctl.cli.output import (
    console,
    human_bytes,
    human_count,
    print_fields,
    print_json,
    print_table,
)
from mlxctl.errors import InvalidInput
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings
from mlxctl.store import RemovalPlan

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _quant(record: ModelRecord) -> str:
    return f"{record.quant_bits}-bit/g{record.quant_group_size}" if record.quant_bits else "none"


@click.command()
@json_option
def init(as_json: bool) -> None:
    """Register every MLX model found in the Hugging Face cache (safe to re-run)."""
    settings = Settings.from_env()
    report = inventory.init_from_hf_cache(open_registry(settings), settings.hf_cache_dir)
    if as_json:
        print_json(
            {
                "cache_dir": report.cache_dir,
                "added": [r.to_dict() for r in report.added],
                "unchanged": [r.slug for r in report.unchanged],
                "skipped": report.skipped,
                "missing": [r.slug for r in report.missing],
                "warnings": report.warnings,
            }
        )
        return
    console.print(f"Scanned {report.cache_dir}")
    for record in report.added:
        console.print(f"  [green]added[/green]    {record.slug}  ({record.repo_id})")
    for skipped in report.skipped:
        console.print(f"  [yellow]skipped[/yellow]  {skipped['repo_id']}: {skipped['reason']}")
    for record in report.missing:
        console.print(f"  [red]missing[/red]  {record.slug}: {record.cache_path} is gone")
    for warning in report.warnings:
        console.print(f"  [yellow]warning[/yellow]  {warning}")
    console.print(
        f"{len(report.added)} added, {len(report.unchanged)} already registered, "
        f"{len(report.skipped)} skipped"
    )


@click.command("list")
@json_option
def list_models(as_json: bool) -> None:
    """List registered models."""
    records = open_registry().list()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        console.print("No models registered. Run `mlxctl init` to scan your Hugging Face cache.")
        return
    rows = [
        (
            r.slug,
            r.repo_id or "-",
            r.format,
            human_count(r.parameters),
            _quant(r),
            human_bytes(r.size_bytes),
            r.port or "",
        )
        for r in records
    ]
    print_table(["MODEL", "REPO", "FORMAT", "PARAMS", "QUANT", "SIZE", "PORT"], rows)


def _show_data(record: ModelRecord, store_root: Path) -> dict[str, Any]:
    data = record.to_dict()
    data["capabilities"] = capabilities(record, store_root=store_root)
    if record.kv_bytes_per_token and record.context_length:
        data["kv_bytes_full_context"] = record.kv_bytes_per_token * record.context_length
    return data


@click.command()
@click.argument("model")
@click.option("--modelfile", is_flag=True, help="Print the ModelSpec that builds this model.")
@json_option
def show(model: str, modelfile: bool, as_json: bool) -> None:
    """Show every field of a model, its capabilities and sizes."""
    if modelfile:
        from mlxctl.cli.store import print_modelfile

        print_modelfile(model)
        return
    settings = Settings.from_env()
    record = open_registry(settings).resolve(model)
    data = _show_data(record, settings.store_dir)
    if as_json:
        print_json(data)
        return
    pairs: list[tuple[str, Any]] = [
        (k, v) for k, v in data.items() if k not in ("extra", "capabilities")
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
    print_fields(pairs)


def _plan_data(record: ModelRecord, plan: RemovalPlan) -> dict[str, Any]:
    return {
        "model": record.slug,
        "cache_path": record.cache_path,
        "deletes": [str(p) for p in plan.deletes],
        "kept": [str(p) for p in plan.kept],
        "freed_bytes": plan.freed_bytes,
        "blocked_by": list(plan.blocked_by),
        "notes": list(plan.notes),
    }


@click.command()
@click.argument("model")
@click.option(
    "--dry-run", is_flag=True, help="Show what would be removed and freed; change nothing."
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def rm(model: str, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove a model: unregister it and delete the files mlxctl owns."""
    settings = Settings.from_env()
    registry = open_registry(settings)
    record, plan = inventory.plan_rm(registry, model, settings)
    if as_json and dry_run:
        print_json(_plan_data(record, plan))
        return
    console.print(f"Model {record.slug} ({record.cache_path})", markup=False)
    for path in plan.deletes:
        console.print(f"  delete  {path}", markup=False)
    for path in plan.kept:
        console.print(f"  keep    {path} (another snapshot or tag uses it)", markup=False)
    for note in plan.notes:
        console.print(f"  note    {note}", markup=False)
    if plan.blocked_by:
        console.print(f"  blocked: shares files with {', '.join(plan.blocked_by)}", markup=False)
    console.print(f"Would free {human_bytes(plan.freed_bytes)}")
    if dry_run:
        return
    if not yes and not click.confirm("Remove it?", default=False):
        raise click.exceptions.Abort()
    freed = inventory.rm(registry, record, plan)
    console.print(f"Removed {record.slug}, freed {human_bytes(freed)}")


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
    """Register a model folder kept outside the Hugging Face cache."""
    if command is not None and "{port}" not in command:
        raise InvalidInput("--command must contain {port}", hint="the daemon picks the port")
    registry = open_registry()
    record = inventory.register_path(registry, path, slug=slug, port=port)
    if command is not None:
        # extra is not an editable column: upsert the whole record (add_many is by slug).
        record = replace(record, extra={**record.extra, "command": command})
        registry.add_many([record])
    console.print(f"Registered {record.slug} ({record.cache_path})")
