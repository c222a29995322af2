"""What the scheduler loop owns, and the read-only snapshots it hands out.

`Entry` is one loaded (or loading, or unloading) model: its worker, ref count,
keep-alive deadline and explicit state; a pinned entry (`slot` set) is a slot's
worker: counted in the budget, never evicted or expired. `Pending` is a model
waiting for memory (or for its old worker to go) before its load can start. Only
the loop task touches these; everyone else gets a `SchedulerStatus`, a frozen copy
taken on the loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlxctl.registry import ModelRecord
from mlxctl.scheduler.policy import State
from mlxctl.supervision.base import Worker

if TYPE_CHECKING:
    from mlxctl.scheduler.lease import Lease


@dataclass(frozen=True)
class SlotPin:
    """Where a pinned model serves: a slot's port and alias, and how its worker is made
    (placed on the slot's port, outliving the daemon)."""

    port: int
    alias: str
    make_worker: Callable[[ModelRecord], Worker] = field(compare=False, repr=False)


@dataclass(eq=False)
class Waiter:
    """One request waiting for a worker; `future` gets its Lease or its error."""

    future: asyncio.Future[Lease]
    keep_alive: float | None
    timer: asyncio.TimerHandle | None = None
    request: bool = True  # False for a slot's own load or adoption: not a request served

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(eq=False)
class Entry:
    record: ModelRecord
    worker_id: int
    worker: Worker
    estimate: int
    state: State
    started: float  # loop clock
    keep_alive: float | None
    refs: int = 0  # requests in flight: an entry with refs > 0 is never evicted
    last_used: float = 0.0
    ready_at: float | None = None
    expires_at: float | None = None  # loop clock; None while in use or kept forever
    expiry_token: int = 0  # bumps on every (re)arm, so a stale timer does nothing
    timer: asyncio.TimerHandle | None = None
    unload_requested: bool = False
    draining: bool = False  # being replaced (its options changed): takes no new requests
    reason: str | None = None  # why it is unloading
    waiters: deque[Waiter] = field(default_factory=deque)
    unload_futures: list[asyncio.Future[bool]] = field(default_factory=list)
    load_task: asyncio.Task[None] | None = None
    watch_task: asyncio.Task[None] | None = None
    requests_total: int = 0
    slot: SlotPin | None = None

    @property
    def slug(self) -> str:
        return self.record.slug

    @property
    def pinned(self) -> bool:
        return self.slot is not None

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.expires_at = None

    def status(self, now: float) -> ModelStatus:
        return ModelStatus(
            model=self.slug,
            state=self.state,
            estimate=self.estimate,
            in_flight=self.refs,
            waiting=sum(1 for w in self.waiters if not w.future.done()),
            worker_id=self.worker_id,
            pid=self.worker.pid,
            base_url=self.worker.base_url if self.state != "loading" else None,
            keep_alive=self.keep_alive,
            expires_in=None if self.expires_at is None else max(0.0, self.expires_at - now),
            loaded_for=None if self.ready_at is None else now - self.ready_at,
            idle_for=None if self.refs or self.ready_at is None else now - self.last_used,
            requests_total=self.requests_total,
            reason=self.reason,
            worker=self.worker,
            slot=self.slot,
        )


@dataclass(eq=False)
class Pending:
    """A model some requests want, waiting until memory (or its old worker) frees up.

    With `slot` its load goes onto that slot; with `adoptee` too, the slot's worker is
    already running (a previous daemon's) and waits only for an on-demand copy to go.
    """

    record: ModelRecord
    estimate: int
    since: float
    waiters: deque[Waiter] = field(default_factory=deque)
    slot: SlotPin | None = None
    adoptee: Worker | None = None

    def prune(self) -> None:
        live = [w for w in self.waiters if not w.future.done()]
        if len(live) != len(self.waiters):
            self.waiters = deque(live)

    def status(self) -> ModelStatus:
        return ModelStatus(
            model=self.record.slug,
            state="queued",
            estimate=self.estimate,
            waiting=len(self.waiters),
            slot=self.slot,
        )


@dataclass
class Counters:
    """Monotonic counts the metrics endpoint exports (kept on the loop, read via status)."""

    loads: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, ok|failed)
    evictions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, reason)
    crashes: Counter[str] = field(default_factory=Counter)
    load_seconds: dict[str, float] = field(default_factory=dict)  # latest, per model

    def copy(self) -> Counters:
        return Counters(
            Counter(self.loads),
            Counter(self.evictions),
            Counter(self.crashes),
            dict(self.load_seconds),
        )


@dataclass(frozen=True)
class ModelStatus:
    """One row of `ps`: a loaded, loading, unloading or queued model."""

    model: str
    state: str  # loading | ready | unloading | queued
    estimate: int
    in_flight: int = 0
    waiting: int = 0
    worker_id: int | None = None
    pid: int | None = None
    base_url: str | None = None
    keep_alive: float | None = None
    expires_in: float | None = None  # seconds from now; None: in use, forever or n/a
    loaded_for: float | None = None  # seconds since ready
    idle_for: float | None = None
    requests_total: int = 0
    reason: str | None = None
    worker: Worker | None = field(default=None, compare=False, repr=False)
    slot: SlotPin | None = None  # pinned on this slot

    @property
    def holds_memory(self) -> bool:
        return self.state in ("loading", "ready", "unloading")

    def to_dict(self) -> dict[str, Any]:
        slot = self.slot
        return {
            "model": self.model,
            "state": self.state,
            "estimated_bytes": self.estimate,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "pid": self.pid,
            "url": self.base_url,
            "keep_alive": self.keep_alive,
            "expires_in": None if self.expires_in is None else round(self.expires_in, 3),
            "loaded_for": None if self.loaded_for is None else round(self.loaded_for, 3),
            "idle_for": None if self.idle_for is None else round(self.idle_for, 3),
            "requests_total": self.requests_total,
            "reason": self.reason,
            "pinned": self.slot is not None,
            "slot": None if slot is None else {"port": slot.port, "alias": slot.alias},
        }


@dataclass(frozen=True)
class SchedulerStatus:
    budget: int
    budget_text: str
    max_loaded: int
    used: int  # estimates of loading, ready and unloading models
    models: list[ModelStatus]
    counters: Counters
    closing: bool = False

    @property
    def free(self) -> int:
        return max(0, self.budget - self.used)

    @property
    def pinned(self) -> int:
        """Bytes the slots' models hold (part of `used`)."""
        return sum(m.estimate for m in self.models if m.slot is not None and m.holds_memory)
