"""Slot workers: the admin operations on slots, and the reconcile loop.

A slot worker is a `supervision.WorkerProcess` placed on the slot's port in its own
session (`Placement.slot`): the same supervision as an on-demand worker (launcher
with a rotating `logs/slot-<port>.log`, identity check, liveness, SIGTERM → SIGKILL),
except that it outlives the daemon. Its pid file (`run/slots/slot-<port>.json`) lets
the next daemon prove the worker is ours and adopt it. Processes mlxctl did not start
are never adopted; an MLX server among them is stopped only on `load --force`,
`unload` and `unload-all`, anything else never.

The scheduler runs slot workers: a slot load is `Scheduler.pin` (counted in the memory
budget, refused like an on-demand load when it does not fit; `--force` never overrides
that), an adopted worker `Scheduler.adopt`, a stop `Scheduler.unpin`. So the daemon's
requests for a model on a slot go to the slot's worker, and its exit is seen there.

Every operation that changes slots holds one asyncio lock, so a reconcile never
interleaves with a load. Registry writes run on one thread of their own, off the
event loop (a CLI holding the write lock must not freeze the daemon); psutil scans
run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mlxctl.errors import Conflict, InvalidInput, NotFound, Unavailable
from mlxctl.library import catalog, transfer
from mlxctl.registry import ModelRecord, Registry, open_registry
from mlxctl.registry.slots import SlotRecord, Slots
from mlxctl.scheduler import LoadFailed, Scheduler, SchedulerError
from mlxctl.scheduler.state import SlotPin
from mlxctl.settings import Settings
from mlxctl.slots import verify
from mlxctl.slots.reconcile import Action, Observed, Plan, SlotView, plan
from mlxctl.slots.table import SlotSpec, resolve_slot, slot_table
from mlxctl.store.local.hfpull import looks_like_hf
from mlxctl.supervision import pidfile, probe
from mlxctl.supervision.handle import ProcessHandle
from mlxctl.supervision.health import external_health, worker_health
from mlxctl.supervision.process import (
    Placement,
    SupervisionConfig,
    WorkerProcess,
    connect_url,
    recognise,
)

log = logging.getLogger("mlxctl.slots")
T = TypeVar("T")


class SlotSupervisor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        http: httpx.AsyncClient,
        scheduler: Scheduler,
        supervision: SupervisionConfig | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.scheduler = scheduler
        self.table = slot_table(settings)
        self.slots = Slots(registry.db)
        self.http = http
        self.host = settings.slot_host
        self.supervision = supervision or SupervisionConfig.from_settings(settings)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[int, WorkerProcess] = {}  # started or adopted by this daemon
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="slots-db")

    # Daemon life -----------------------------------------------------------------

    async def start(self) -> None:
        """Sync the table with the settings, adopt (count) the slot workers a previous
        daemon left running before the first request, then reconcile in the background."""
        await self._write(self.slots.sync_table, [(s.port, s.alias) for s in self.table])
        async with self._lock:
            await self._adopt_untracked(await self._views())
        self._task = asyncio.create_task(self._loop(), name="slot-reconciler")

    async def close(self) -> None:
        """Stop reconciling; the slot workers keep serving (the scheduler detaches them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._write(self.slots.db.close)  # the writer thread's connection
        self._writer.shutdown(wait=True)

    async def _loop(self) -> None:
        interval = self.settings.slot_reconcile_interval
        while True:
            try:
                result = await self.reconcile()
                for action in result["actions"]:
                    log.info("slot reconcile: %s", action)
                for problem in result["unfixable"]:
                    log.warning("slot drift not fixed: %s", problem)
            except Exception:
                log.exception("slot reconcile failed")
            if interval <= 0:
                return
            await asyncio.sleep(interval)

    # Operations (the admin API) ----------------------------------------------------

    async def snapshot(self) -> list[dict[str, Any]]:
        views = await self._views()
        return self._describe(views, plan(views))

    async def reconcile(self) -> dict[str, Any]:
        async with self._lock:
            views = await self._views()
            decided = plan(views)
            done: list[dict[str, Any]] = []
            unfixable = list(decided.unfixable)
            for action in decided.actions:
                entry = action.to_dict()
                try:
                    await self._execute(action)
                    entry["ok"] = True
                except Exception as e:  # one slot's failure must not stop the others
                    entry.update(ok=False, error=str(e))
                    unfixable.append(
                        {"slot": action.port, "model": action.model, "problem": str(e)}
                    )
                done.append(entry)
            await self._adopt_untracked(views)
            return {"actions": done, "unfixable": unfixable, "slots": await self.snapshot()}

    async def load(self, reference: str, slot: str | int, force: bool = False) -> dict[str, Any]:
        spec = resolve_slot(slot, self.table)
        record = await self._model(reference)
        async with self._lock:
            current = self._slot(spec.port)
            if current.model not in (None, record.slug):
                raise Conflict(
                    f"slot {spec.port} ({spec.alias}) is assigned to '{current.model}'",
                    hint=f"unload it first: mlxctl unload {spec.port}",
                )
            other = self.slots.by_model(record.slug)
            if other is not None and other.port != spec.port:
                raise Conflict(
                    f"model '{record.slug}' is already on slot {other.port} ({other.alias})",
                    hint=f"one model, one slot: unload it first (mlxctl unload {other.port})",
                )
            self._check_startable(record)
            seen = await self._observe(spec.port)
            stopped: dict[str, Any] | None = None
            if seen.listening:
                if seen.ours and seen.model == record.slug:
                    await self._write(self.slots.assign, spec.port, record.slug)
                    await self._execute(Action("adopt", spec.port, record.slug, seen.pid))
                    return await self._one(spec.port)
                stopped = await self._clear_port(spec, seen, force)
            await self._write(self.slots.assign, spec.port, record.slug)
            try:
                await self._start(spec.port, record)
            except BaseException:
                await self._write(self.slots.clear, spec.port)
                raise
        described = await self._one(spec.port)
        if stopped is not None:
            described["stopped"] = stopped
        return described

    async def unload(self, slot: str | int) -> dict[str, Any]:
        """Clear the slot and stop what serves it: our worker, or an MLX server (never
        another kind of process)."""
        spec = resolve_slot(slot, self.table)
        async with self._lock:
            before = self._slot(spec.port)
            seen = await self._observe(spec.port)
            await self._write(self.slots.clear, spec.port)
            stopped = None
            if seen.pid is not None and (seen.ours or seen.mlx_kind is not None):
                await self._stop(spec.port, seen.pid)
                stopped = seen.pid
            await self._set_live(spec.port, None, None, None)
        described = await self._one(spec.port)
        described["unloaded"] = before.model
        described["stopped_pid"] = stopped
        return described

    async def unload_all(self) -> dict[str, Any]:
        """Every slot cleared, and every MLX server on a slot port stopped."""
        unloaded = []
        for view in await self._views():
            seen = view.observed
            mlx_server = seen.pid is not None and (seen.ours or seen.mlx_kind is not None)
            if view.desired is not None or view.recorded_pid is not None or mlx_server:
                result = await self.unload(view.port)
                unloaded.append(
                    {
                        "slot": view.port,
                        "model": result["unloaded"],
                        "stopped_pid": result["stopped_pid"],
                    }
                )
        return {"unloaded": unloaded, "slots": await self.snapshot()}

    async def verify(self, strict: bool) -> dict[str, Any]:
        """Errors always count; warnings (not running, no audit line) only when strict."""
        views = {v.port: v for v in await self._views()}
        problems: list[dict[str, Any]] = []
        for slot in self.slots.list():
            if slot.model is None or slot.port not in views:
                continue
            record = self.registry.get(slot.model)
            if record is None:
                continue
            found = [(p, True) for p in verify.needs(record)]
            seen = views[slot.port].observed
            if seen.status == "ok" and seen.model == record.slug:
                audit = verify.last_audit(self.log_path(slot.port))
                if audit is None:
                    found.append(("no worker.ready audit line in the slot log", False))
                elif audit.get("pid") == seen.pid:
                    found += [(p, True) for p in verify.audit_drift(record, audit)]
                else:
                    found.append(("the slot log has no audit line from the running worker", False))
            else:
                found.append(("not running", False))
            problems += [
                {"slot": slot.port, "model": slot.model, "problem": text}
                for text, error in found
                if error or strict
            ]
        return {"ok": not problems, "problems": problems}

    def log_path(self, port: int) -> Path:
        return self.supervision.log_path(self._placement(port))

    def worker(self, port: int) -> WorkerProcess | None:
        """The supervised worker serving `port`, if this daemon started or adopted it."""
        worker = self._workers.get(port)
        return worker if worker is not None and worker.state in ("loading", "ready") else None

    def model_on(self, alias: str) -> str | None:
        """The model the slot `alias` serves (None: no slot has that alias), so the
        daemon's dialects take `jerry-s` as a model name. A slot without one: NotFound."""
        spec = next((s for s in self.table if s.alias == alias.strip().lower()), None)
        if spec is None:
            return None
        slot = self.slots.get(spec.port)
        if slot is None or slot.model is None:
            raise NotFound(
                f"slot {spec.port} ({spec.alias}) has no model",
                hint=f"load one onto it: mlxctl load MODEL {spec.alias}",
            )
        return slot.model

    # Observation -----------------------------------------------------------------

    async def _views(self) -> list[SlotView]:
        configured = {spec.port for spec in self.table}
        slots = [s for s in self.slots.list() if s.port in configured]
        observed = await asyncio.gather(*(self._observe(s.port) for s in slots))
        return [self._view(slot, seen) for slot, seen in zip(slots, observed, strict=True)]

    def _view(self, slot: SlotRecord, seen: Observed) -> SlotView:
        record = self.registry.get(slot.model) if slot.model else None
        blocked = None
        if record is not None and self.settings.slot_strict:
            blocked = "; ".join(verify.needs(record)) or None
        return SlotView(
            port=slot.port,
            alias=slot.alias,
            desired=slot.model,
            recorded_pid=slot.pid,
            observed=seen,
            model_on_disk=record is None or Path(record.cache_path).exists(),
            blocked=blocked,
        )

    async def _observe(self, port: int) -> Observed:
        found = await asyncio.to_thread(probe.listener, port, self.host)
        if found is None:
            return Observed()
        started = pidfile.read(self.supervision.pid_file(self._placement(port)))
        url = connect_url(self.host, port)
        if started is not None and started.nonce is None:  # an external server we started
            health = await external_health(self.http, url, timeout=3.0)
        else:
            health = await worker_health(self.http, url, timeout=3.0)
        if await asyncio.to_thread(recognise, started, health, found.pid):
            assert started is not None
            ours = found.mlx_kind or "external server"
            return Observed(started.pid, found.command, ours, started.model, health.status, True)
        found = probe.with_pid(found, health.pid, port)
        if found.mlx_kind is None:
            return Observed(found.pid, found.command)  # a foreign answer means nothing here
        return Observed(found.pid, found.command, found.mlx_kind, health.model, health.status)

    def _describe(self, views: list[SlotView], decided: Plan) -> list[dict[str, Any]]:
        rows = []
        for view in views:
            seen = view.observed
            live = None
            if seen.listening:
                slot = self.slots.get(view.port)
                started = slot.started_at if slot and slot.pid == seen.pid else None
                live = {
                    "pid": seen.pid,
                    "model": seen.model,
                    "started_at": started or _create_time(seen.pid),
                    "healthy": seen.status == "ok" and seen.mlx_kind is not None,
                }
            rows.append(
                {
                    "port": view.port,
                    "alias": view.alias,
                    "desired": view.desired,
                    "live": live,
                    "drift": decided.drift.get(view.port, []),
                }
            )
        return rows

    async def _one(self, port: int) -> dict[str, Any]:
        return next(row for row in await self.snapshot() if row["port"] == port)

    # Effects ---------------------------------------------------------------------

    async def _execute(self, action: Action) -> None:
        port = action.port
        if action.kind in ("stop", "restart") and action.pid is not None:
            await self._stop(port, action.pid)
        if action.kind in ("stop", "forget"):
            await self._set_live(port, None, None, None)
        elif action.kind == "adopt" and action.pid is not None:
            await self._adopt(port, action.model, action.pid)
            started = _create_time(action.pid)
            await self._set_live(port, action.pid, action.model, started)
        elif action.kind in ("start", "restart"):
            record = self.registry.get(action.model or "")
            if record is None:
                raise NotFound(f"model '{action.model}' is no longer registered")
            await self._start(port, record)

    async def _start(self, port: int, record: ModelRecord) -> None:
        """Load the model onto the slot through the scheduler (budget first), and record
        the worker live once it is ready."""
        try:
            await self.scheduler.pin(record, self._pin(port))
        except LoadFailed as e:
            raise Unavailable(f"slot {port}: '{record.slug}' did not start: {e}") from None
        worker = self._workers[port]
        now = datetime.now(UTC).isoformat()
        await self._set_live(port, worker.pid, record.slug, now)

    async def _adopt(self, port: int, slug: str | None, pid: int) -> None:
        """Count and watch (exit, liveness) a ready worker a previous daemon started."""
        tracked = self.worker(port)
        if tracked is not None and tracked.pid == pid:
            return
        record = self.registry.get(slug or "")
        started = pidfile.read(self.supervision.pid_file(self._placement(port)))
        if record is None or started is None or started.pid != pid:
            return
        placement = self._placement(port)
        worker = WorkerProcess.adopt(record, self.supervision, placement, started)
        try:
            await self.scheduler.adopt(record, self._pin(port), worker)
        except (SchedulerError, Conflict):
            worker.detach()  # the daemon is closing, or the model is live elsewhere
            raise
        self._workers[port] = worker

    async def _adopt_untracked(self, views: list[SlotView]) -> None:
        """After a daemon restart the plan adopts nothing new: adopt ours all the same."""
        for view in views:
            seen = view.observed
            pid, ours = seen.pid, seen.ours and seen.status == "ok"
            if pid is not None and ours and seen.model == view.desired:
                try:
                    await self._adopt(view.port, seen.model, pid)
                except (SchedulerError, Conflict) as e:
                    log.warning("slot %d: not adopted: %s", view.port, e)

    async def _stop(self, port: int, pid: int) -> None:
        """Stop our worker on `port` (through the scheduler, after the daemon's requests
        on it), or the MLX server `pid` the caller identified."""
        worker = self.worker(port)
        if worker is not None and worker.pid == pid and await self.scheduler.unpin(worker.slug):
            return
        await ProcessHandle(pid).terminate(self.settings.worker_stop_grace)

    async def _clear_port(self, spec: SlotSpec, seen: Observed, force: bool) -> dict[str, Any]:
        who = f"pid {seen.pid}" if seen.pid is not None else "a process mlxctl cannot see"
        what = f"{who} ({seen.command})" if seen.command else who
        if not force:
            raise Conflict(
                f"port {spec.port} ({spec.alias}) is in use by {what}",
                hint="--force stops it if it is an MLX server; other processes are never stopped",
            )
        if not (seen.ours or seen.mlx_kind is not None) or seen.pid is None:
            raise Conflict(
                f"port {spec.port} ({spec.alias}) is in use by {what}, which is not an MLX "
                "server: --force never stops other processes",
                hint="stop it yourself or choose another slot",
            )
        await self._stop(spec.port, seen.pid)
        return {"pid": seen.pid, "command": seen.command, "kind": seen.mlx_kind}

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A registry write on the writer thread: the event loop never waits on SQLite."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(fn, *args, **kwargs))

    async def _set_live(
        self, port: int, pid: int | None, model: str | None, since: str | None
    ) -> None:
        await self._write(self.slots.set_live, port, pid=pid, live_model=model, started_at=since)

    # Helpers ---------------------------------------------------------------------

    def _placement(self, port: int) -> Placement:
        return Placement.slot(port, self.host)

    def _pin(self, port: int) -> SlotPin:
        alias = resolve_slot(port, self.table).alias
        return SlotPin(port, alias, functools.partial(self._make_worker, port))

    def _make_worker(self, port: int, record: ModelRecord) -> WorkerProcess:
        """The scheduler's factory for this slot's worker (tracked here by port)."""
        worker = WorkerProcess(record, self.supervision, self._placement(port), self.http)
        self._workers[port] = worker
        return worker

    async def _model(self, reference: str) -> ModelRecord:
        """The registered model, or — for an `org/repo` not registered yet — pulled from HF."""
        try:
            return self._registered(reference)
        except NotFound as e:
            if not looks_like_hf(reference):
                hint = f"{e.hint}; " if e.hint else ""
                raise NotFound(
                    e.message, hint=f"{hint}to fetch it from Hugging Face: mlxctl pull {reference}"
                ) from None
        slug = await asyncio.to_thread(self._pull, reference)
        return self._registered(slug)

    def _registered(self, reference: str) -> ModelRecord:
        """The one place a slot change resolves a model name: exactly (slug, repo id or
        `name:tag`), never by prefix, since slot changes stop and start servers."""
        return self.registry.resolve_exact(reference)

    def _pull(self, reference: str) -> str:
        """Runs in a worker thread, with its own registry connection."""
        registry = open_registry(self.settings)
        try:
            store = catalog.open_store(self.settings)
            return transfer.pull(registry, store, self.settings, reference).record.slug
        finally:
            registry.db.close()

    def _slot(self, port: int) -> SlotRecord:
        slot = self.slots.get(port)
        if slot is None:
            raise NotFound(f"there is no slot on port {port}")
        return slot

    def _check_startable(self, record: ModelRecord) -> None:
        if not Path(record.cache_path).exists():
            raise InvalidInput(
                f"model '{record.slug}' is missing from disk ({record.cache_path})",
                hint=f"re-pull or re-register it, or remove it: mlxctl rm {record.slug}",
            )
        problems = verify.needs(record)
        if problems and self.settings.slot_strict:
            raise InvalidInput(
                f"refusing to start '{record.slug}' (MLXCTL_SLOT_STRICT): {'; '.join(problems)}"
            )


def _create_time(pid: int | None) -> str | None:
    created = pidfile.create_time(pid) if pid is not None else None
    return None if created is None else datetime.fromtimestamp(created, UTC).isoformat()
