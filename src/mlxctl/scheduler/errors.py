"""Why the scheduler could not hand out a worker; each class names its HTTP status and code.

    Unavailable (mlxctl.errors)
    ├── Busy           the model's wait queue is full             → 429 + Retry-After
    ├── CannotFit      the memory budget cannot take the model    → 503 + Retry-After
    ├── LoadFailed     the worker failed to load (cooling down)   → 503 + Retry-After
    ├── WorkerLost     the worker died while serving the request  → 502 (or a final event)
    │   └── WorkerTimeout  it sent nothing for too long            → 504 (or a final event)
    └── ShuttingDown   the daemon is draining                     → 503 + Retry-After

Every one carries `retry_after` in seconds (None where retrying cannot help). The
functions at the end write the messages, each naming the setting that would help.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlxctl.backend import backend_of
from mlxctl.errors import Conflict, Unavailable
from mlxctl.model_options import ModelOptions
from mlxctl.registry import ModelRecord
from mlxctl.scheduler.config import SchedulerConfig
from mlxctl.units import human_bytes


class SchedulerError(Unavailable):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)


class Busy(SchedulerError):
    status = 429
    code = "queue_full"


class CannotFit(SchedulerError):
    code = "memory_budget"


class LoadFailed(SchedulerError):
    code = "load_failed"


class WorkerLost(SchedulerError):
    status = 502
    code = "worker_lost"


class WorkerTimeout(WorkerLost):
    status = 504
    code = "worker_timeout"


class ShuttingDown(SchedulerError):
    code = "shutting_down"


def queue_full(slug: str, waiting: int, config: SchedulerConfig, retry_after: float) -> Busy:
    return Busy(
        f"model '{slug}' already has {waiting} request(s) waiting for it to load "
        f"(MLXCTL_MAX_QUEUE={config.max_queue}); retry shortly",
        retry_after=max(1.0, retry_after),
    )


def too_big(
    record: ModelRecord,
    estimate: int,
    config: SchedulerConfig,
    options: ModelOptions,
    slots: Sequence[tuple[str, str, int]] = (),
    *,
    pinned: bool = False,
) -> CannotFit:
    """No eviction can help: the model alone exceeds the budget, or what the slots
    (`slots`: alias, model, bytes) leave of it. The same words for a slot load."""
    if config.max_loaded < 1 and not pinned:
        return CannotFit("no model may be loaded: MLXCTL_MAX_LOADED_MODELS is 0")
    weights = human_bytes(record.size_bytes or 0)
    served = options.context or record.context_length or options.kv_context
    if backend_of(record).shared_kv:
        kv = f"a KV cache for {served} tokens shared by its sequences"
    else:
        kv = f"KV cache for {options.max_batch} × {min(options.kv_context, served)} tokens"
    held = ""
    if slots:
        each = ", ".join(f"{alias} ({model}, {human_bytes(n)})" for alias, model, n in slots)
        held = f", of which slots hold {human_bytes(sum(n for _, _, n in slots))}: {each}"
    unload = ", or unload a slot (mlxctl unload ALIAS)" if slots else ""
    return CannotFit(
        f"model '{record.slug}' needs about {human_bytes(estimate)} (weights {weights} + "
        f"{kv}) but the memory budget is {budget_words(config)}{held}: raise "
        f"MLXCTL_MEMORY_BUDGET, or lower MLXCTL_KV_CONTEXT or MLXCTL_WORKER_MAX_BATCH{unload}",
        retry_after=60,
    )


def on_a_slot(slug: str, port: int, alias: str) -> Conflict:
    """An on-demand unload of a model its slot holds: slots are unloaded as slots."""
    return Conflict(
        f"model '{slug}' is pinned on slot {port} ({alias}): it is not unloaded on demand",
        hint=f"unload the slot: mlxctl unload {alias}",
    )


def on_another_slot(slug: str, port: int, alias: str) -> Conflict:
    return Conflict(
        f"model '{slug}' is already on slot {port} ({alias})",
        hint=f"one model, one slot: unload it first (mlxctl unload {port})",
    )


def no_room(slug: str, config: SchedulerConfig, busy: Sequence[str]) -> CannotFit:
    """Waited `queue_timeout` for busy models to free memory, in vain."""
    return CannotFit(
        f"model '{slug}' waited {config.queue_timeout:g} s for memory: the budget "
        f"({budget_words(config)}) is held by busy models: {', '.join(busy)}",
        retry_after=5,
    )


def budget_words(config: SchedulerConfig) -> str:
    text = f" ({config.budget_text})" if config.budget_text else ""
    return f"{human_bytes(config.budget)}{text}"
