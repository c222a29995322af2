"""The model store: pull, push, create, cp, prune, verify."""

from __future__ import annotations

from pathlib import Path

from mlxctl.errors import Forbidden, Unavailable
from mlxctl.library import build, catalog, transfer
from mlxctl.operations.base import Args, Context, Flag, Operation, Result, Text
from mlxctl.store.content.garbage import PrunePlan, execute_prune, plan_prune
from mlxctl.store.content.integrity import verify_store
from mlxctl.store.content.tags import ModelName

PREFIX = "/api/admin/store"


class PullArgs(Args):
    reference: Text
    name: str | None = None
    insecure: Flag = False
    replace: Flag = False  # take the name of a store model that came from another source


def check_insecure(ctx: Context, args: PullArgs | PushArgs) -> None:
    """Over the API, a plain-http registry needs the daemon's consent: a client must not
    point the daemon at arbitrary http services (a blind SSRF)."""
    if args.insecure and ctx.over_api and not ctx.settings.allow_insecure_pull:
        raise Forbidden(
            "plain-http registries ('insecure': true) are not allowed through the daemon's API",
            hint="start the daemon with MLXCTL_ALLOW_INSECURE_PULL=1, or pull without a "
            "daemon running",
        )


def pull(ctx: Context, args: PullArgs) -> Result:
    """Pull a model from the Hugging Face hub or an OCI registry into the store."""
    check_insecure(ctx, args)
    result = transfer.pull(
        ctx.registry,
        ctx.layout,
        ctx.settings,
        args.reference,
        name=args.name,
        insecure=args.insecure,
        replace=args.replace,
        progress=ctx.progress,
    )
    return {
        "model": result.record.slug,
        "name": str(result.name),
        "source": result.source,
        "manifest": result.manifest_digest,
        "downloaded": result.downloaded,
        "reused": result.reused,
        "resumed": result.resumed,
        "cache_path": result.record.cache_path,
    }


class PushArgs(Args):
    model: Text
    target: Text
    insecure: Flag = False


def push(ctx: Context, args: PushArgs) -> Result:
    """Push a model to an OCI registry (a Hugging Face cache model joins the store first)."""
    check_insecure(ctx, args)
    took_in = not isinstance(
        catalog.find(ctx.registry, ctx.layout, args.model, exact=True), ModelName
    )
    report = transfer.push(
        ctx.registry,
        ctx.layout,
        ctx.settings,
        args.model,
        args.target,
        insecure=args.insecure,
        progress=ctx.progress,
    )
    return {
        "model": args.model,
        "target": str(report.target),
        "manifest": report.manifest_digest,
        "uploaded": report.uploaded,
        "mounted": report.mounted,
        "skipped": report.skipped,
        "bytes_uploaded": report.bytes_uploaded,
        "took_into_store": took_in,
    }


class CreateArgs(Args):
    name: Text
    modelspec: Text  # the spec's text
    directory: Text  # where its relative FROM/ADAPTER folders are (on the daemon's machine)
    source: str = "ModelSpec"  # named in error messages


def create(ctx: Context, args: CreateArgs) -> Result:
    """Create a store model from a ModelSpec; the base's blobs are shared."""
    report = build.create_from_text(
        ctx.registry,
        ctx.layout,
        args.name,
        args.modelspec,
        source=args.source,
        here=Path(args.directory).expanduser(),
        progress=ctx.progress,
    )
    return {
        "model": report.record.slug,
        "manifest": report.manifest_digest,
        "new_blobs": report.new_blobs,
        "cache_path": report.record.cache_path,
    }


class CopyArgs(Args):
    source: Text
    target: Text


def cp(ctx: Context, args: CopyArgs) -> Result:
    """Give a model a new store name (no bytes copied; HF cache models by hard links)."""
    record = catalog.copy(ctx.registry, ctx.layout, args.source, args.target)
    return {"source": args.source, "model": record.slug, "cache_path": record.cache_path}


class PruneArgs(Args):
    dry_run: Flag = False


def prune(ctx: Context, args: PruneArgs) -> Result:
    """Delete blobs no model uses and files left by interrupted pulls."""
    plan = plan_prune(ctx.layout, catalog.orphan_tags(ctx.registry, ctx.layout))
    freed = None if args.dry_run else execute_prune(ctx.layout, plan)
    if not args.dry_run and freed is None:
        raise Unavailable(
            "a pull or create is writing to the store; nothing was pruned",
            hint="run mlxctl prune again when it has finished",
        )
    return {**_prune_data(plan), "dry_run": args.dry_run, "freed": freed or 0}


def _prune_data(plan: PrunePlan) -> Result:
    return {
        "unregistered_tags": [str(n) for n in plan.tags],
        "blobs": [{"digest": d, "freed_bytes": n} for d, n in plan.blobs],
        "leftovers": [{"path": str(p), "bytes": n} for p, n in plan.leftovers],
        "model_dirs": [str(p) for p in plan.model_dirs],
        "freed_bytes": plan.freed_bytes,
    }


class VerifyArgs(Args):
    models: tuple[str, ...] = ()


def verify(ctx: Context, args: VerifyArgs) -> Result:
    """Re-hash the blobs of store models (default: all); damaged ones are moved aside."""
    names: list[ModelName] | None = None
    if args.models:
        names = [catalog.require_store_model(ctx.registry, ctx.layout, m) for m in args.models]
    report = verify_store(ctx.layout, names, progress=ctx.progress)
    catalog.mark_integrity(
        ctx.registry, {str(c.name): [p.title for p in c.problems] for c in report.models}
    )
    return {
        "ok": report.ok,
        "blobs_checked": report.blobs_checked,
        "bytes_checked": report.bytes_checked,
        "models": [
            {
                "name": str(c.name),
                "ok": c.ok,
                "error": c.error,
                "problems": [
                    {"digest": p.digest, "file": p.title, "problem": p.problem} for p in c.problems
                ],
            }
            for c in report.models
        ],
        "quarantined": [str(p) for p in report.quarantined],
    }


PULL = Operation("store.pull", "POST", f"{PREFIX}/pull", PullArgs, pull, streams=True)
PUSH = Operation("store.push", "POST", f"{PREFIX}/push", PushArgs, push, streams=True)
CREATE = Operation("store.create", "POST", f"{PREFIX}/create", CreateArgs, create, streams=True)
COPY = Operation("store.cp", "POST", f"{PREFIX}/cp", CopyArgs, cp)
PRUNE = Operation("store.prune", "POST", f"{PREFIX}/prune", PruneArgs, prune)
VERIFY = Operation("store.verify", "POST", f"{PREFIX}/verify", VerifyArgs, verify, streams=True)
