"""The MCP tools: each one call (or two) to the daemon's admin API through `mlxctl.client`.

Destructive tools take `dry_run` (answer what would happen, change nothing) and
`confirm` (see `calls.confirmed`: without it the user is asked, or the call refused).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context

from mlxctl.client import DaemonClient
from mlxctl.client.catalog import registered_models
from mlxctl.errors import NotFound
from mlxctl.mcp.calls import ProgressNotifier, confirmed, daemon, declined
from mlxctl.operations.models import RM, RmArgs
from mlxctl.operations.store import PULL, PullArgs

Answer = dict[str, Any]


def _slot(slot: str | int) -> str | int:
    # Agents often send "8100" as a string; the daemon takes a port as a number.
    return int(slot) if isinstance(slot, str) and slot.isdigit() else slot


def _slot_row(client: DaemonClient, slot: str | int) -> Answer:
    text = str(slot).strip().lower()
    slots = client.slots()
    for row in slots:
        if text in (str(row["port"]), row["alias"]):
            return row
    names = ", ".join(f"{s['alias']} ({s['port']})" for s in slots)
    raise NotFound(f"no slot {slot!r}", hint=f"the slots are {names}")


# Reading -------------------------------------------------------------------------


async def list_models() -> Answer:
    """Registered models the daemon can serve (its GET /v1/models)."""
    return {"models": await daemon(registered_models)}


async def slot_status() -> Answer:
    """Each slot: port, alias, desired model, live process (pid, model, healthy) and drift."""
    return {"slots": await daemon(lambda c: c.slots())}


async def memory_status() -> Answer:
    """The memory budget, used and free bytes, and each loaded model's memory."""
    status = await daemon(lambda c: c.status())
    keys = ("budget", "budget_bytes", "used_bytes", "free_bytes", "measured_bytes")
    per_model = [
        {
            "model": m.get("model"),
            "estimated_bytes": m.get("estimated_bytes"),
            "measured_bytes": (m.get("measured") or {}).get("total_bytes"),
        }
        for m in status.get("models") or []
    ]
    return {**{k: status.get(k) for k in keys}, "models": per_model}


async def loaded_models() -> Answer:
    """Models loaded on demand now: state, pid, requests in flight, memory (mlxctl ps)."""
    return {"models": await daemon(lambda c: c.ps())}


async def ps() -> Answer:
    """Everything running: on-demand models (state, pid, memory) and the live slots."""

    def both(client: DaemonClient) -> Answer:
        slots = [
            {"port": s["port"], "alias": s["alias"], **(s["live"] or {})}
            for s in client.slots()
            if s["live"]
        ]
        return {"models": client.ps(), "slots": slots}

    return await daemon(both)


async def verify(strict: bool = False) -> Answer:
    """Check each slot's model has the settings it needs (e.g. Harmony parsers for gpt-oss)
    and runs with the registry's; `strict` also fails on warnings (not running)."""
    return await daemon(lambda c: c.verify(strict))


# Loading -------------------------------------------------------------------------


async def load(
    ctx: Context[Any, Any],
    model: str,
    slot: str | int | None = None,
    keep_alive: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    confirm: bool = False,
) -> Answer:
    """Load `model` and wait until it is ready (mlx.load).

    Without `slot` it loads on demand and unloads after `keep_alive` idle (5m, 1h, -1
    forever). With `slot` (alias like jerry-l, or port like 8101) it is assigned to
    that slot and served on its port until unloaded; `force` stops another MLX server
    found on the port, and asks first. `dry_run` answers what is there now (the slot,
    or the model's on-demand worker), changing nothing.
    """
    if dry_run:
        return {"dry_run": True, "model": model, "force": force, **await daemon(_now(model, slot))}
    if slot is None:
        return await daemon(lambda c: c.load(model, keep_alive))
    if force:
        question = f"Stop whatever MLX server runs on slot {slot} to load {model} there?"
        if not await confirmed(ctx, question, confirm):
            return declined(question)
    return await daemon(lambda c: c.load_slot(model, _slot(slot), force))


def _now(model: str, slot: str | int | None) -> Callable[[DaemonClient], Answer]:
    def now(client: DaemonClient) -> Answer:
        if slot is not None:
            return {"slot": _slot_row(client, slot)}
        rows = [r for r in client.ps() if r.get("model") == model]
        return {"loaded": rows[0] if rows else None}

    return now


async def load_slot(
    ctx: Context[Any, Any],
    model: str,
    slot: str | int,
    force: bool = False,
    dry_run: bool = False,
    confirm: bool = False,
) -> Answer:
    """Load `model` into `slot` (alias like jerry-xl, or port like 8100) and wait until ready.

    `model` is a registered model's exact name (a prefix is refused), or a Hugging
    Face `org/repo` not registered yet, which is downloaded first (it can be many
    GB). A slot assigned to another model is always refused: unload it first.
    `force` stops an MLX server that mlxctl did not start (e.g. a hand-run
    mlx_lm.server) holding the slot's port, and asks first; any other process is
    never stopped. `dry_run` answers what the slot holds now.
    """
    return await load(ctx, model, slot, force=force, dry_run=dry_run, confirm=confirm)


async def unload(
    ctx: Context[Any, Any], model: str, dry_run: bool = False, confirm: bool = False
) -> Answer:
    """Unload `model` now (mlx.unload); a slot port or alias unloads that slot and clears
    its assignment. `dry_run` answers what is loaded there, changing nothing."""

    def current(client: DaemonClient) -> Answer:
        if client.names_a_slot(model):
            return {"slot": _slot_row(client, model)}
        rows = [r for r in client.ps() if r.get("model") == model]
        return {"model": model, "loaded": rows[0] if rows else None}

    if dry_run:
        return {"dry_run": True, **await daemon(current)}
    question = f"Unload {model}?"
    if not await confirmed(ctx, question, confirm):
        return declined(question)

    def act(client: DaemonClient) -> Answer:
        if client.names_a_slot(model):
            return client.unload_slot(_slot(model))
        return client.unload(model)

    return await daemon(act)


async def unload_slot(
    ctx: Context[Any, Any], slot: str | int, dry_run: bool = False, confirm: bool = False
) -> Answer:
    """Stop the model in `slot` (alias or port) and clear its assignment."""
    if dry_run:
        return {"dry_run": True, "slot": await daemon(lambda c: _slot_row(c, slot))}
    question = f"Stop the model in slot {slot} and clear its assignment?"
    if not await confirmed(ctx, question, confirm):
        return declined(question)
    return await daemon(lambda c: c.unload_slot(_slot(slot)))


async def unload_all(
    ctx: Context[Any, Any], dry_run: bool = False, confirm: bool = False
) -> Answer:
    """Stop every slot's model and clear every assignment."""
    if dry_run:
        slots = await daemon(lambda c: c.slots())
        busy = [s for s in slots if s["desired"] or s["live"]]
        return {"dry_run": True, "would_unload": busy}
    question = "Stop every slot's model and clear every assignment?"
    if not await confirmed(ctx, question, confirm):
        return declined(question)
    return await daemon(lambda c: c.unload_all())


# The registry and the store -------------------------------------------------------


async def pull(
    ctx: Context[Any, Any], reference: str, name: str | None = None, insecure: bool = False
) -> Answer:
    """Pull a model (org/repo from the Hugging Face hub, or oci://registry/repo:tag) into
    the daemon's store and register it; progress is reported in bytes as it downloads."""
    args = PullArgs(reference=reference, name=name, insecure=insecure)
    notifier = ProgressNotifier(ctx)
    return await daemon(lambda c: c.run(PULL, args, notifier))


async def rm(
    ctx: Context[Any, Any], model: str, dry_run: bool = False, confirm: bool = False
) -> Answer:
    """Remove a model: unload it, unregister it and delete the files mlxctl owns.
    `dry_run` answers the plan (paths, bytes freed) and changes nothing."""
    plan = await daemon(lambda c: c.run(RM, RmArgs(model=model, dry_run=True)))
    if dry_run:
        return plan
    question = f"Remove {plan['model']} and delete {len(plan['deletes'])} path(s)?"
    if not await confirmed(ctx, question, confirm):
        return declined(question)
    return await daemon(lambda c: c.run(RM, RmArgs(model=plan["model"], confirm=True)))


async def reconcile(ctx: Context[Any, Any], dry_run: bool = False, confirm: bool = False) -> Answer:
    """Make the slots match the registry now: restart dead workers, stop strays.
    `dry_run` answers each slot's drift (what reconcile would act on)."""
    if dry_run:
        slots = await daemon(lambda c: c.slots())
        drift = [{"slot": s["port"], "alias": s["alias"], "drift": s["drift"]} for s in slots]
        return {"dry_run": True, "drift": [d for d in drift if d["drift"]]}
    question = "Reconcile the slots (restart or stop workers so they match the registry)?"
    if not await confirmed(ctx, question, confirm):
        return declined(question)
    return await daemon(lambda c: c.reconcile())


__all__ = [
    "list_models",
    "load",
    "load_slot",
    "loaded_models",
    "memory_status",
    "ps",
    "pull",
    "reconcile",
    "rm",
    "slot_status",
    "unload",
    "unload_all",
    "unload_slot",
    "verify",
]
