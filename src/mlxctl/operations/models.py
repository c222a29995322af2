"""Registered models: list, show, modelfile, init, register, rm."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mlxctl.capabilities import capabilities
from mlxctl.errors import InvalidInput
from mlxctl.library import inventory
from mlxctl.library.build import modelfile as build_modelfile
from mlxctl.model_options import ModelOptions
from mlxctl.operations.base import Args, Context, Flag, Number, Operation, Result, Text
from mlxctl.registry import ModelRecord
from mlxctl.store.local.removal import RemovalPlan

PREFIX = "/api/admin/models"


class NoArgs(Args):
    pass


class ModelArgs(Args):
    model: Text


def list_models(ctx: Context, args: NoArgs) -> Result:
    """Every registered model, by slug."""
    return {"models": [r.to_dict() for r in ctx.registry.list()]}


def show(ctx: Context, args: ModelArgs) -> Result:
    """Every field of a model, its capabilities and its KV cache at full context."""
    record = ctx.registry.resolve(args.model)
    data = record.to_dict()
    data["capabilities"] = capabilities(record, store_root=ctx.layout.root)
    if record.kv_bytes_per_token and record.context_length:
        data["kv_bytes_full_context"] = record.kv_bytes_per_token * record.context_length
    options = ctx.options(record) if ctx.options else ModelOptions.from_settings(ctx.settings)
    data["options"] = options.as_dict()
    return data


def modelfile(ctx: Context, args: ModelArgs) -> Result:
    """The ModelSpec that builds a model (its own, or one derived from it)."""
    return {"model": args.model, "modelfile": build_modelfile(ctx.registry, ctx.layout, args.model)}


def init(ctx: Context, args: NoArgs) -> Result:
    """Register every MLX model of the Hugging Face cache (a second run changes nothing)."""
    report = inventory.init_from_hf_cache(ctx.registry, ctx.settings.hf_cache_dir)
    return {
        "cache_dir": report.cache_dir,
        "added": [r.to_dict() for r in report.added],
        "unchanged": [r.slug for r in report.unchanged],
        "skipped": report.skipped,
        "missing": [r.slug for r in report.missing],
        "missing_paths": {r.slug: r.cache_path for r in report.missing},
        "warnings": report.warnings,
    }


class RegisterArgs(Args):
    path: Text
    slug: Text | None = None
    port: Number | None = None
    command: str | None = None


def register(ctx: Context, args: RegisterArgs) -> Result:
    """Register a model folder kept outside the Hugging Face cache (never deleted by rm)."""
    if args.command is not None and "{port}" not in args.command:
        raise InvalidInput("--command must contain {port}", hint="the daemon picks the port")
    record = inventory.register_path(ctx.registry, Path(args.path), slug=args.slug, port=args.port)
    if args.command is not None:
        # extra is not an editable column: upsert the whole record (add_many is by slug).
        record = replace(record, extra={**record.extra, "command": args.command})
        ctx.registry.add_many([record])
    return record.to_dict()


class RmArgs(ModelArgs):
    dry_run: Flag = False
    confirm: Flag = False


def rm(ctx: Context, args: RmArgs) -> Result:
    """Remove a model: stop serving it, unregister it, delete the files mlxctl owns.

    With `dry_run` nothing changes and the answer is the plan; otherwise `confirm`
    must be true.
    """
    record, plan = inventory.plan_rm(ctx.registry, args.model, ctx.settings)
    data = plan_data(record, plan)
    if args.dry_run:
        return {**data, "dry_run": True, "removed": False, "stopped": []}
    if not args.confirm:
        raise InvalidInput(
            f"rm deletes '{record.slug}' and its files: send confirm=true to do it",
            hint="dry_run=true shows what it would delete; the CLI asks first, or pass --yes",
        )
    inventory.refuse_blocked(record, plan)  # before anything is unloaded
    stopped = ctx.stop_serving(record)
    freed = inventory.rm(ctx.registry, record, plan)
    return {**data, "dry_run": False, "removed": True, "freed_bytes": freed, "stopped": stopped}


def plan_data(record: ModelRecord, plan: RemovalPlan) -> Result:
    return {
        "model": record.slug,
        "cache_path": record.cache_path,
        "deletes": [str(p) for p in plan.deletes],
        "kept": [str(p) for p in plan.kept],
        "freed_bytes": plan.freed_bytes,
        "blocked_by": list(plan.blocked_by),
        "notes": list(plan.notes),
    }


LIST = Operation("models.list", "GET", PREFIX, NoArgs, list_models)
SHOW = Operation("models.show", "POST", f"{PREFIX}/show", ModelArgs, show)
MODELFILE = Operation("models.modelfile", "POST", f"{PREFIX}/modelfile", ModelArgs, modelfile)
INIT = Operation("models.init", "POST", f"{PREFIX}/init", NoArgs, init)
REGISTER = Operation("models.register", "POST", f"{PREFIX}/register", RegisterArgs, register)
RM = Operation("models.rm", "POST", f"{PREFIX}/rm", RmArgs, rm)
