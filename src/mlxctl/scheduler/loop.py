"""The scheduler: one asyncio task owns which models are loaded, and decides.

Handlers post events (`events.py`) to a queue; the loop task applies them one at
a time to the state in `state.py`, so nothing needs a lock. Handlers are plain
functions that must not block or await: starting and stopping workers go out as
tasks, whose results come back as events. Who to evict is `policy.evict_for`.

    acquire ─▶ ready?  grant a Lease (ref count +1)
               loading? wait for that one load (bounded: Busy → 429)
               else     queue for memory; the FIFO head evicts idle models (LRU)
                        and loads once it fits; too big for the budget → CannotFit
    release ─▶ ref count -1; idle → unload now (keep_alive 0), at a deadline, or never (-1)
    pin     ─▶ as acquire, but the load goes onto a slot: a pinned entry, counted in the
               budget, never evicted or expired (an on-demand copy of the model goes first)
    adopt   ─▶ a running slot worker of a previous daemon becomes a pinned entry at once
    unload  ─▶ on-demand entries; a pinned one only through `unpin` (the slot supervisor)

A model has at most one entry, so one worker: a request for a model on a slot is
served by the slot's worker, and loading a model onto a slot replaces its on-demand one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

from mlxctl.config.routing import Placement
from mlxctl.errors import MlxctlError
from mlxctl.model_options import ModelOptions, OptionsSource
from mlxctl.registry import ModelRecord
from mlxctl.scheduler import errors, policy
from mlxctl.scheduler.config import SchedulerConfig
from mlxctl.scheduler.errors import Busy, LoadFailed, SchedulerError, ShuttingDown
from mlxctl.scheduler.events import (
    Acquire,
    Adopt,
    Event,
    Expire,
    LoadDone,
    Query,
    Reconfigure,
    Release,
    Restart,
    Shutdown,
    Unload,
    WaitExpired,
    WorkerExited,
)
from mlxctl.scheduler.events import LoadFailed as LoadFailedEvent
from mlxctl.scheduler.keepalive import parse_keep_alive
from mlxctl.scheduler.lease import Lease
from mlxctl.scheduler.state import (
    Counters,
    Entry,
    ModelStatus,
    Pending,
    SchedulerStatus,
    SlotPin,
    Waiter,
)
from mlxctl.sharding import limits
from mlxctl.sharding.plan import ShardPlan, layer_bytes, plan
from mlxctl.supervision.base import Worker, WorkerFactory
from mlxctl.units import human_bytes

log = logging.getLogger("mlxctl.scheduler")

DEFAULT: Literal["default"] = "default"
KeepAlive = float | None | Literal["default"]


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        factory: WorkerFactory,
        options: OptionsSource | None = None,
    ) -> None:
        self.config = config
        self.options = options or OptionsSource()
        self._factory = factory
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._entries: dict[str, Entry] = {}
        self._pending: dict[str, Pending] = {}
        self._cooldown: dict[str, tuple[float, str]] = {}  # slug → (until, message)
        self._ids = itertools.count(1)
        self._effects: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._closed: list[asyncio.Future[None]] = []
        self._counters = Counters()
        self._task: asyncio.Task[None] | None = None
        # Bumped after every event but a query: watchers wake and ask `status()` again.
        self.version = 0
        self._changed = asyncio.Event()
        self._handlers: dict[type, Callable[[Any], None]] = {
            Acquire: self._on_acquire,
            Adopt: self._on_adopt,
            Release: self._on_release,
            LoadDone: self._on_load_done,
            LoadFailedEvent: self._on_load_failed,
            WorkerExited: self._on_exited,
            Expire: self._on_expire,
            WaitExpired: self._on_wait_expired,
            Unload: self._on_unload,
            Query: self._on_query,
            Restart: self._on_restart,
            Reconfigure: self._on_reconfigure,
            Shutdown: self._on_shutdown,
        }

    # Public API (any coroutine on the daemon's event loop) ----------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mlxctl-scheduler")

    async def acquire(
        self, record: ModelRecord, keep_alive: KeepAlive = DEFAULT, *, slot: SlotPin | None = None
    ) -> Lease:
        """A lease on a ready worker for `record` (its slot's, when it is on one); raises
        a SchedulerError subclass. With `slot`, a load it needs goes onto that slot.
        A sharded model that cannot run as configured is refused first (400)."""
        self._check_running()
        options = self.options.for_model(record)
        if options.shard is not None:
            await self._check_shard(record, options)
        ka = self._keep_alive(record) if isinstance(keep_alive, str) else keep_alive
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._post(Acquire(record, Waiter(future, ka, request=slot is None), slot))
        return await self._granted(future)

    async def _granted(self, future: asyncio.Future[Lease]) -> Lease:
        try:
            return await future
        except asyncio.CancelledError:
            # Granted just as the caller gave up: hand the ref count back.
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()
            raise

    async def load(self, record: ModelRecord, keep_alive: KeepAlive = DEFAULT) -> None:
        """Load without a request (admin); the keep-alive clock starts at once."""
        lease = await self.acquire(record, keep_alive)
        lease.release()

    async def pin(self, record: ModelRecord, slot: SlotPin) -> None:
        """Load `record` onto `slot` and wait until it is ready. Refused like an on-demand
        load when it does not fit (CannotFit names the budget and what slots hold)."""
        (await self.acquire(record, slot=slot)).release()

    async def adopt(self, record: ModelRecord, slot: SlotPin, worker: Worker) -> None:
        """Count a ready slot worker a previous daemon started (it is in memory already:
        never refused; idle on-demand models are evicted if it overfills the budget)."""
        self._check_running()
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._post(Adopt(record, Waiter(future, None, request=False), slot, worker))
        (await self._granted(future)).release()

    async def unload(self, slug: str) -> bool:
        """Unload now, or once in-flight requests end; False when it was not loaded.
        A model on a slot is refused (Conflict): slots are unloaded with `unpin`."""
        return await self._unload(slug, slot=False)

    async def unpin(self, slug: str) -> bool:
        """Stop `slug`'s worker, pinned or not (the slot supervisor's unload)."""
        return await self._unload(slug, slot=True)

    async def _unload(self, slug: str, *, slot: bool) -> bool:
        self._check_running()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._post(Unload(slug, future, slot))
        return await future

    async def restart(self, slug: str) -> bool:
        """Replace `slug`'s on-demand worker once its running requests finish; requests
        that come meanwhile wait for the new one. False when it is not loaded on demand."""
        self._check_running()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._post(Restart(slug, future))
        return await future

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Apply new limits (a config reload); waiting loads are reconsidered."""
        self._post(Reconfigure(config))

    async def status(self) -> SchedulerStatus:
        self._check_running()
        future: asyncio.Future[SchedulerStatus] = asyncio.get_running_loop().create_future()
        self._post(Query(future))
        return await future

    async def changed(self, since: int) -> int:
        """Wait until `version` passes `since` (a state may have changed); the new version.
        Read `version` before asking `status()`, so no change falls in between."""
        while self.version <= since:
            await self._changed.wait()
        return self.version

    async def close(self) -> None:
        """Refuse new work, stop every worker, wait for their exits, end the loop."""
        if self._task is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(Shutdown(future))
        await future
        self._events.put_nowait(None)
        await self._task
        self._task = None
        await asyncio.gather(*self._effects, return_exceptions=True)

    def estimate(self, record: ModelRecord) -> int:
        """What loading `record` takes of this machine's budget (a sharded model: the
        share of its local ranks)."""
        options = self.options.for_model(record)
        if options.shard is not None:
            try:
                return self.shard_plan(record, options).local_bytes
            except MlxctlError:  # unreadable weights: `acquire` reports it; count it whole
                pass
        return policy.estimate_bytes(record, options)

    async def _check_shard(self, record: ModelRecord, options: ModelOptions) -> None:
        """Refuse (400) a sharded model asking what it cannot do, or not fitting a host."""
        limits.check_options(record.slug, options)
        shares = await asyncio.to_thread(self.shard_plan, record, options)  # reads headers
        refusal = shares.refusal(record.slug)
        if refusal is not None:
            raise refusal

    def shard_plan(self, record: ModelRecord, options: ModelOptions) -> ShardPlan:
        """Each host's share of a sharded model (reads the weight headers once; cached)."""
        assert options.shard is not None
        weights = record.size_bytes or 0
        kv = policy.estimate_bytes(record, options) - weights - options.draft_bytes
        return plan(options.shard, layer_bytes(Path(record.cache_path)), kv, self.config.budget)

    def placement(self, record: ModelRecord) -> Placement:
        """Where `record` stands now, for routing aliases. A read of the loop's state:
        call it on the daemon's event loop (as every request handler runs)."""
        entry = self._entries.get(record.slug)
        loaded = entry is not None and entry.state in ("ready", "loading") and not entry.draining
        saturated = (
            loaded and entry is not None and entry.refs >= self.options.for_model(record).max_batch
        )
        budget, max_loaded = self.config.budget, self.config.max_loaded
        fits = policy.evict_for(self.estimate(record), self._views(), budget, max_loaded)
        return Placement(loaded=loaded, saturated=saturated, fits=fits is not None)

    # The loop --------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._task is None or self._task.done():
            raise ShuttingDown("mlxctl is shutting down", retry_after=5)

    def _post(self, event: Event) -> None:
        self._events.put_nowait(event)

    async def _run(self) -> None:
        while (event := await self._events.get()) is not None:
            try:
                self._handlers[type(event)](event)
            except Exception:  # a bug in one decision must not take the daemon down
                log.exception("scheduler: error handling %s", type(event).__name__)
            if not isinstance(event, Query):
                self.version += 1
                self._changed.set()
                self._changed = asyncio.Event()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # Handlers: on the loop task, never block, never await -------------------------

    def _on_acquire(self, event: Acquire) -> None:
        waiter, record, slot = event.waiter, event.record, event.slot
        if waiter.future.done():
            return
        if self._closing:
            return self._fail(waiter, ShuttingDown("mlxctl is shutting down", retry_after=5))
        slug = record.slug
        entry = self._entries.get(slug)
        if entry is not None and entry.slot is not None and slot not in (None, entry.slot):
            return self._fail(waiter, errors.on_another_slot(slug, *_where(entry.slot)))
        # An on-demand worker of a model on its way to a slot takes no new requests.
        usable = entry is not None and not entry.draining
        usable = (
            usable and entry is not None and (entry.pinned or not self._moving_to_slot(slug, slot))
        )
        if entry is not None and usable and entry.state == "ready":
            return self._grant(entry, waiter)
        cooling = self._cooldown.get(slug)
        if cooling is not None and cooling[0] > self._now():
            return self._fail(waiter, LoadFailed(cooling[1], retry_after=cooling[0] - self._now()))
        self._cooldown.pop(slug, None)
        if entry is not None and usable and entry.state == "loading":
            entry.waiters = _live(entry.waiters)
            if len(entry.waiters) >= self.config.max_queue:
                return self._fail(waiter, self._busy(slug, len(entry.waiters)))
            entry.waiters.append(waiter)
            return
        pending = self._pending.get(slug)
        if pending is None:
            pending = Pending(record, self.estimate(record), self._now(), slot=slot)
            self._pending[slug] = pending
        elif slot is not None:
            if pending.slot is not None and pending.slot.port != slot.port:
                return self._fail(waiter, errors.on_another_slot(slug, *_where(pending.slot)))
            pending.slot = slot  # the requests already waiting will be served by the slot
        pending.prune()
        if len(pending.waiters) >= self.config.max_queue:
            return self._fail(waiter, self._busy(slug, len(pending.waiters)))
        loop = asyncio.get_running_loop()
        timeout = self.config.queue_timeout
        waiter.timer = loop.call_later(timeout, self._post, WaitExpired(slug, waiter))
        pending.waiters.append(waiter)
        self._drain()

    def _on_adopt(self, event: Adopt) -> None:
        waiter, slug = event.waiter, event.record.slug
        if waiter.future.done():
            return
        if self._closing:
            return self._fail(waiter, ShuttingDown("mlxctl is shutting down", retry_after=5))
        entry = self._entries.get(slug)
        if entry is not None and entry.slot is not None:
            if entry.worker.pid == event.worker.pid:
                return self._grant(entry, waiter)  # adopted already
            return self._fail(waiter, errors.on_another_slot(slug, *_where(entry.slot)))
        pending = self._pending.get(slug)
        if pending is None:
            pending = Pending(event.record, self.estimate(event.record), self._now())
            self._pending[slug] = pending
        pending.slot, pending.adoptee = event.slot, event.worker
        pending.waiters.append(waiter)
        self._drain()

    def _on_release(self, event: Release) -> None:
        entry = self._entry(event.slug, event.worker_id)
        if entry is None:
            return
        entry.refs -= 1
        entry.last_used = self._now()
        if not entry.pinned:  # a slot's model stays until its slot is unloaded
            entry.keep_alive = event.keep_alive
        if entry.refs == 0:
            self._idle(entry)
        self._drain()

    def _on_load_done(self, event: LoadDone) -> None:
        entry = self._entry(event.slug, event.worker_id)
        if entry is None or entry.state != "loading":
            return
        now = self._now()
        entry.state, entry.ready_at, entry.last_used = "ready", now, now
        seconds = now - entry.started
        self._counters.loads[entry.slug, "ok"] += 1
        self._counters.load_seconds[entry.slug] = seconds
        log.info("loaded %s in %.2f s (pid %s)", entry.slug, seconds, entry.worker.pid)
        waiters, entry.waiters = entry.waiters, deque()
        for waiter in waiters:
            self._grant(entry, waiter)
        if entry.refs == 0:
            self._idle(entry)
        self._drain()

    def _on_load_failed(self, event: LoadFailedEvent) -> None:
        entry = self._entry(event.slug, event.worker_id)
        if entry is not None and entry.state == "loading":
            self._load_failed(entry, event.message)

    def _on_exited(self, event: WorkerExited) -> None:
        entry = self._entry(event.slug, event.worker_id)
        if entry is None:
            return
        if entry.state == "loading":
            self._load_failed(entry, entry.worker.exit_message())
        elif entry.state == "ready":
            self._counters.crashes[entry.slug] += 1
            message = entry.worker.exit_message()
            log.warning(
                "worker for %s stopped unexpectedly (%d request(s) in flight): %s",
                entry.slug,
                entry.refs,
                message,
            )
            sharded = self.options.for_model(entry.record).shard is not None
            if _faulted(entry.worker.returncode) or sharded:
                # It crashed by itself (a bad build, an engine bug) and would again: cool down.
                # A sharded group never ends by itself: a rank (or a host) went.
                text = f"model '{entry.slug}' crashed: {message}"
                self._cooldown[entry.slug] = (self._now() + self.config.cooldown, text)
        self._remove(entry)

    def _on_expire(self, event: Expire) -> None:
        entry = self._entry(event.slug, event.worker_id)
        if entry is None or entry.expiry_token != event.token:
            return
        if self.options.for_model(entry.record).pinned:  # pinned by a reload since it was armed
            return
        if entry.state == "ready" and entry.refs == 0:
            self._stop(entry, "expired")

    def _on_wait_expired(self, event: WaitExpired) -> None:
        pending = self._pending.get(event.slug)
        waiter = event.waiter
        if pending is None or waiter not in pending.waiters or waiter.future.done():
            return
        pending.waiters.remove(waiter)
        busy = [e.slug for e in self._entries.values() if e.refs > 0 or e.state == "loading"]
        self._fail(waiter, errors.no_room(event.slug, self.config, busy))
        if not pending.waiters:
            del self._pending[event.slug]

    def _on_unload(self, event: Unload) -> None:
        entry = self._entries.get(event.slug)
        if entry is None:
            event.future.set_result(False)
            return
        if entry.slot is not None and not event.slot:
            event.future.set_exception(errors.on_a_slot(entry.slug, *_where(entry.slot)))
            return
        entry.unload_futures.append(event.future)
        entry.unload_requested = True
        if entry.state == "ready" and entry.refs == 0:
            self._stop(entry, "unload")

    def _on_restart(self, event: Restart) -> None:
        entry = self._entries.get(event.slug)
        if entry is None or entry.pinned or entry.state == "unloading":
            event.future.set_result(False)
            return
        entry.draining = entry.unload_requested = True
        log.info("restarting %s (its options changed) after %d request(s)", entry.slug, entry.refs)
        if entry.state == "ready" and entry.refs == 0:
            self._stop(entry, "options changed")
        event.future.set_result(True)

    def _on_reconfigure(self, event: Reconfigure) -> None:
        self.config = event.config
        self._drain()

    def _on_query(self, event: Query) -> None:
        if not event.future.done():
            event.future.set_result(self._snapshot())

    def _on_shutdown(self, event: Shutdown) -> None:
        self._closing = True
        self._closed.append(event.future)
        error = ShuttingDown("mlxctl is shutting down", retry_after=5)
        for pending in self._pending.values():
            for waiter in pending.waiters:
                self._fail(waiter, error)
        self._pending.clear()
        for entry in list(self._entries.values()):
            for waiter in entry.waiters:
                self._fail(waiter, error)
            entry.waiters.clear()
            if entry.pinned and entry.state == "ready":
                self._detach(entry)  # a slot's worker outlives the daemon
            elif entry.state != "unloading":
                self._stop(entry, "shutdown")
        self._maybe_closed()

    # Decisions -------------------------------------------------------------------

    def _drain(self) -> None:
        """Start loads for queued models in arrival order while they fit (FIFO for memory).
        Adoptions go first: they wait for nothing but an on-demand copy's exit."""
        if self._closing:
            return
        for slug, pending in list(self._pending.items()):
            if pending.adoptee is not None and self._replaced(slug, pending):
                del self._pending[slug]
                self._adopt(pending, pending.adoptee)
        for slug, pending in list(self._pending.items()):
            pending.prune()
            if not pending.waiters:
                del self._pending[slug]
                continue
            entry = self._entries.get(slug)
            if pending.slot is not None and not self._replaced(slug, pending):
                return  # its on-demand copy is still stopping
            if entry is not None and entry.state != "unloading" and not entry.draining:
                del self._pending[slug]  # it came back meanwhile: join it
                for waiter in pending.waiters:
                    waiter.cancel_timer()
                    if entry.state == "ready":
                        self._grant(entry, waiter)
                    else:
                        entry.waiters.append(waiter)
                continue
            if entry is not None:
                return  # its previous worker is still stopping
            budget, max_loaded = self.config.budget, self.config.max_loaded
            views, pin = self._views(), pending.slot is not None
            victims = policy.evict_for(pending.estimate, views, budget, max_loaded, pinned=pin)
            if victims is None:
                if policy.cannot_fit(pending.estimate, views, budget, max_loaded, pinned=pin):
                    del self._pending[slug]
                    error = self._too_big(pending)
                    for waiter in pending.waiters:
                        self._fail(waiter, error)
                    continue
                return  # busy models hold the memory: wait for a release
            for name in victims:
                self._stop(self._entries[name], "evicted")
            views = self._views()
            if policy.waits_for_exits(pending.estimate, views, budget, max_loaded, pinned=pin):
                return
            del self._pending[slug]
            self._start_load(pending)

    def _grant(self, entry: Entry, waiter: Waiter) -> None:
        waiter.cancel_timer()
        if waiter.future.done():
            return
        entry.refs += 1
        entry.requests_total += waiter.request
        entry.last_used = self._now()
        entry.disarm()
        lease = Lease(entry.slug, entry.worker_id, entry.worker, waiter.keep_alive, self._release)
        waiter.future.set_result(lease)

    def _release(self, lease: Lease) -> None:
        self._post(Release(lease.slug, lease.worker_id, lease.keep_alive))

    def _idle(self, entry: Entry) -> None:
        """No request in flight: unload now, arm the keep-alive deadline, or keep forever."""
        if entry.state != "ready":
            return
        if entry.unload_requested or entry.keep_alive == 0:
            self._stop(entry, "unload" if entry.unload_requested else "keep_alive=0")
            return
        entry.disarm()
        if entry.keep_alive is None:
            return
        entry.expiry_token += 1
        entry.expires_at = self._now() + entry.keep_alive
        event = Expire(entry.slug, entry.worker_id, entry.expiry_token)
        entry.timer = asyncio.get_running_loop().call_later(entry.keep_alive, self._post, event)

    def _load_failed(self, entry: Entry, message: str) -> None:
        text = f"model '{entry.slug}' failed to load: {message}"
        log.error("%s", text)
        self._counters.loads[entry.slug, "failed"] += 1
        cooldown = self.config.cooldown
        self._cooldown[entry.slug] = (self._now() + cooldown, text)
        error = LoadFailed(text, retry_after=cooldown)
        for waiter in entry.waiters:
            self._fail(waiter, error)
        entry.waiters.clear()
        self._stop(entry, "load failed", count=False)

    def _stop(self, entry: Entry, reason: str, *, count: bool = True) -> None:
        if entry.state == "unloading":
            return
        log.info("unloading %s (%s)", entry.slug, reason)
        if count:
            self._counters.evictions[entry.slug, reason] += 1
        entry.state, entry.reason = "unloading", reason
        entry.disarm()
        if entry.load_task is not None and not entry.load_task.done():
            entry.load_task.cancel()
        self._spawn(entry.worker.stop(self.config.stop_grace))

    def _start_load(self, pending: Pending) -> None:
        record, slot = pending.record, pending.slot
        worker_id = next(self._ids)
        worker = slot.make_worker(record) if slot is not None else self._factory(record)
        entry = Entry(
            record=record,
            worker_id=worker_id,
            worker=worker,
            estimate=pending.estimate,
            state="loading",
            started=self._now(),
            keep_alive=None if slot is not None else self._keep_alive(record),
            slot=slot,
        )
        for waiter in pending.waiters:
            waiter.cancel_timer()  # from here the load timeout bounds the wait
        entry.waiters = pending.waiters
        self._entries[record.slug] = entry
        where = f" on slot {slot.port} ({slot.alias})" if slot is not None else ""
        log.info("loading %s%s (estimate %s)", record.slug, where, human_bytes(entry.estimate))
        entry.load_task = self._spawn(self._load(record.slug, worker_id, worker))
        entry.watch_task = self._spawn(self._watch(record.slug, worker_id, worker))

    def _adopt(self, pending: Pending, worker: Worker) -> None:
        """A running slot worker becomes a ready pinned entry; the budget makes room."""
        now, slot = self._now(), pending.slot
        assert slot is not None
        worker_id = next(self._ids)
        entry = Entry(
            record=pending.record,
            worker_id=worker_id,
            worker=worker,
            estimate=pending.estimate,
            state="ready",
            started=now,
            keep_alive=None,
            last_used=now,
            ready_at=now,
            slot=slot,
        )
        self._entries[entry.slug] = entry
        log.info("adopted %s on slot %d (pid %s)", entry.slug, slot.port, worker.pid)
        entry.watch_task = self._spawn(self._watch(entry.slug, worker_id, worker))
        for waiter in pending.waiters:
            self._grant(entry, waiter)
        budget = self.config.budget
        victims = policy.evict_for(0, self._views(), budget, self.config.max_loaded, pinned=True)
        if victims is None:
            log.warning("the slots' models hold more than the memory budget (%s)", budget)
        for name in victims or []:
            self._stop(self._entries[name], "evicted")

    def _replaced(self, slug: str, pending: Pending) -> bool:
        """Whether a slot load may go ahead: no on-demand copy of the model is left. A copy
        still there is asked to go (after its running requests)."""
        entry = self._entries.get(slug)
        if entry is None or entry.pinned:
            return True
        entry.unload_requested = True
        if entry.state == "ready" and entry.refs == 0:
            self._stop(entry, "moved to a slot")
        return False

    def _moving_to_slot(self, slug: str, slot: SlotPin | None) -> bool:
        pending = self._pending.get(slug)
        return slot is not None or (pending is not None and pending.slot is not None)

    def _detach(self, entry: Entry) -> None:
        """Forget a slot's ready worker without stopping it (the daemon is closing)."""
        if entry.watch_task is not None:
            entry.watch_task.cancel()
        entry.worker.detach()
        self._remove(entry)

    def _remove(self, entry: Entry) -> None:
        entry.disarm()
        del self._entries[entry.slug]
        for future in entry.unload_futures:
            if not future.done():
                future.set_result(True)
        self._drain()
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self._closing and not self._entries:
            for future in self._closed:
                if not future.done():
                    future.set_result(None)

    # Effects: tasks whose outcome comes back as events ---------------------------------

    async def _load(self, slug: str, worker_id: int, worker: Worker) -> None:
        try:
            await worker.start()
            await worker.wait_ready(self.config.load_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._post(LoadFailedEvent(slug, worker_id, str(e) or type(e).__name__))
        else:
            self._post(LoadDone(slug, worker_id))

    async def _watch(self, slug: str, worker_id: int, worker: Worker) -> None:
        code = await worker.wait_exit()
        self._post(WorkerExited(slug, worker_id, code))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._effects.add(task)
        task.add_done_callback(self._effect_done)
        return task

    def _effect_done(self, task: asyncio.Task[None]) -> None:
        self._effects.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler effect failed", exc_info=task.exception())

    # Helpers ---------------------------------------------------------------------

    def _keep_alive(self, record: ModelRecord) -> float | None:
        """The model's own keep-alive (config.yaml), else the daemon's; pinned: forever."""
        options = self.options.for_model(record)
        if options.pinned:
            return None
        if options.keep_alive is None:
            return self.config.keep_alive
        return parse_keep_alive(options.keep_alive)

    def _entry(self, slug: str, worker_id: int) -> Entry | None:
        entry = self._entries.get(slug)
        return entry if entry is not None and entry.worker_id == worker_id else None

    def _views(self) -> list[policy.LoadedView]:
        return [
            policy.LoadedView(
                name=e.slug,
                estimate=e.estimate,
                in_flight=e.refs,
                last_used=e.last_used,
                state=e.state,
                forever=e.keep_alive is None,
                pinned=e.pinned,
                kept=self.options.for_model(e.record).pinned,
            )
            for e in self._entries.values()
        ]

    def _fail(self, waiter: Waiter, error: MlxctlError) -> None:
        waiter.cancel_timer()
        if not waiter.future.done():
            waiter.future.set_exception(error)

    def _too_big(self, pending: Pending) -> SchedulerError:
        record = pending.record
        slots = [
            (e.slot.alias, e.slug, e.estimate)
            for e in self._entries.values()
            if e.slot is not None and e.state != "unloading"
        ]
        options = self.options.for_model(record)
        pinned = pending.slot is not None
        return errors.too_big(record, pending.estimate, self.config, options, slots, pinned=pinned)

    def _busy(self, slug: str, waiting: int) -> Busy:
        retry = self._counters.load_seconds.get(slug, 2.0)
        return errors.queue_full(slug, waiting, self.config, retry)

    def _snapshot(self) -> SchedulerStatus:
        now = self._now()
        rows = [entry.status(now) for entry in self._entries.values()]
        rows += [pending.status() for pending in self._pending.values()]
        rows += [
            ModelStatus(model=slug, state="failed", estimate=0, expires_in=until - now, reason=why)
            for slug, (until, why) in self._cooldown.items()
            if until > now and slug not in self._entries and slug not in self._pending
        ]
        return SchedulerStatus(
            budget=self.config.budget,
            budget_text=self.config.budget_text,
            max_loaded=self.config.max_loaded,
            used=sum(e.estimate for e in self._entries.values()),
            models=rows,
            counters=self._counters.copy(),
            closing=self._closing,
        )


# Signals a process sends itself when it breaks; SIGKILL/SIGTERM come from outside.
_FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}


def _faulted(returncode: int | None) -> bool:
    return returncode is not None and returncode < 0 and -returncode in _FAULTS


def _where(slot: SlotPin) -> tuple[int, str]:
    return slot.port, slot.alias


def _live(waiters: deque[Waiter]) -> deque[Waiter]:
    return deque(w for w in waiters if not w.future.done())


__all__ = ["DEFAULT", "KeepAlive", "Scheduler"]
