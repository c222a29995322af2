"""Slot workers: start, stop, adopt, and the operations the admin API offers.

Slot workers are not tied to the daemon's life: each runs in its own session
(process group) with no parent-death signal and logs to `logs/slot-<port>.log`,
so a stopped or killed daemon leaves them serving and the next daemon adopts
them (pid alive, port listening, /health reporting the desired model).

Every operation that changes slots holds one asyncio lock, so a reconcile never
interleaves with a load. Registry calls stay on the event-loop thread (the
connection is per thread); psutil scans run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlxctl.errors import Conflict, InvalidInput, NotFound, Unavailable
from mlxctl.library import catalog, transfer
from mlxctl.registry import ModelRecord, Registry, open_registry
from mlxctl.registry.slots import SlotRecord, Slots
from mlxctl.settings import Settings
from mlxctl.slots import probe, verify
from mlxctl.slots.reconcile import Action, Observed, Plan, SlotView, plan
from mlxctl.slots.table import SlotSpec, resolve_slot, slot_table
from mlxctl.store.local.hfpull import looks_like_hf
from mlxctl.workers.process import last_error_line, worker_command

log = logging.getLogger("mlxctl.slots")

# Children this process started: polled so exited ones are reaped, never waited on at exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SlotSupervisor:
    def __init__(self, settings: Settings, registry: Registry, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.registry = registry
        self.table = slot_table(settings)
        self.slots = Slots(registry.db)
        self.http = http
        self.host = settings.slot_host
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # Daemon life -----------------------------------------------------------------

    def start(self) -> None:
        """Sync the table with the settings and start the reconcile loop (first pass now)."""
        self.slots.sync_table([(s.port, s.alias) for s in self.table])
        self._task = asyncio.create_task(self._loop(), name="slot-reconciler")

    async def close(self) -> None:
        """Stop reconciling; the slot workers keep serving."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
                if seen.mlx_kind == "mlxctl worker" and seen.model == record.slug:
                    self.slots.assign(spec.port, record.slug)
                    await self._execute(Action("adopt", spec.port, record.slug, seen.pid))
                    return await self._one(spec.port)
                stopped = await self._clear_port(spec, seen, force)
            self.slots.assign(spec.port, record.slug)
            try:
                await self._start(spec.port, record)
            except BaseException:
                self.slots.clear(spec.port)
                raise
        described = await self._one(spec.port)
        if stopped is not None:
            described["stopped"] = stopped
        return described

    async def unload(self, slot: str | int) -> dict[str, Any]:
        spec = resolve_slot(slot, self.table)
        async with self._lock:
            before = self._slot(spec.port)
            seen = await self._observe(spec.port)
            self.slots.clear(spec.port)
            stopped = None
            if seen.pid is not None and self._ours(before, seen):
                await self._stop(seen.pid)
                stopped = seen.pid
            self.slots.set_live(spec.port, pid=None, live_model=None, started_at=None)
        described = await self._one(spec.port)
        described["unloaded"] = before.model
        described["stopped_pid"] = stopped
        return described

    async def unload_all(self) -> dict[str, Any]:
        unloaded = []
        for spec in self.table:
            slot = self.slots.get(spec.port)
            if slot is not None and (slot.model is not None or slot.pid is not None):
                result = await self.unload(spec.port)
                unloaded.append({"slot": spec.port, "model": result["unloaded"]})
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
        return self.settings.logs_dir / f"slot-{port}.log"

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
        for pid, child in list(_CHILDREN.items()):
            if child.poll() is not None:
                del _CHILDREN[pid]
        found = await asyncio.to_thread(probe.listener, port, self.host)
        if found is None:
            return Observed()
        model = status = None
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
            response = await self.http.get(self._url(port, "/health"), timeout=3.0)
            body = response.json()
            status = body.get("status")
            model = (body.get("model") or {}).get("id")
            found = probe.with_pid(found, body.get("pid"), port)
        kind = found.mlx_kind
        if kind is None:
            model = status = None  # a foreign process's answer means nothing here
        return Observed(found.pid, found.command, kind, model, status)

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
        if action.kind in ("stop", "restart") and action.pid is not None:
            await self._stop(action.pid)
        if action.kind in ("stop", "forget"):
            self.slots.set_live(action.port, pid=None, live_model=None, started_at=None)
        elif action.kind == "adopt":
            self.slots.set_live(
                action.port,
                pid=action.pid,
                live_model=action.model,
                started_at=_create_time(action.pid),
            )
        elif action.kind in ("start", "restart"):
            record = self.registry.get(action.model or "")
            if record is None:
                raise NotFound(f"model '{action.model}' is no longer registered")
            await self._start(action.port, record)

    async def _start(self, port: int, record: ModelRecord) -> None:
        """Spawn the slot worker detached, and record it live once /health says ok."""
        argv = [*worker_command(self.settings.worker_command), record.slug]
        argv += ["--port", str(port), "--host", self.host]
        log_path = self.log_path(port)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as logfile:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            logfile.write(f"=== mlxctl {stamp} start: {shlex.join(argv)}\n".encode())
            logfile.flush()
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise Unavailable(f"cannot start the slot worker ({argv[0]}): {e}") from None
        _CHILDREN[child.pid] = child
        try:
            await self._wait_ready(port, record.slug, child)
        except BaseException:
            await self._stop(child.pid)
            raise
        self.slots.set_live(
            port, pid=child.pid, live_model=record.slug, started_at=datetime.now(UTC).isoformat()
        )

    async def _wait_ready(self, port: int, slug: str, child: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.settings.load_timeout
        delay = 0.05
        while True:
            if child.poll() is not None:
                raise Unavailable(self._with_log(port, f"the slot worker for '{slug}' exited"))
            with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
                response = await self.http.get(self._url(port, "/health"), timeout=2.0)
                body = response.json()
                if body.get("status") == "ok" and (body.get("model") or {}).get("id") == slug:
                    return
                if body.get("status") == "failed":
                    raise Unavailable(self._with_log(port, f"'{slug}' failed to load"))
            if time.monotonic() >= deadline:
                message = f"'{slug}' not ready after {self.settings.load_timeout:g} s"
                raise Unavailable(self._with_log(port, message))
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _stop(self, pid: int) -> None:
        """SIGTERM (the group when it leads one), SIGKILL after the grace period."""
        group = _leads_group(pid)
        _signal(pid, signal.SIGTERM, group)
        deadline = time.monotonic() + self.settings.worker_stop_grace
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _alive(pid):
            log.warning("slot worker pid %d ignored SIGTERM; killing it", pid)
            _signal(pid, signal.SIGKILL, group)
            while _alive(pid):
                await asyncio.sleep(0.05)
        elif group:
            _signal(pid, signal.SIGKILL, group)  # anything it left in its group

    async def _clear_port(self, spec: SlotSpec, seen: Observed, force: bool) -> dict[str, Any]:
        who = f"pid {seen.pid}" if seen.pid is not None else "a process mlxctl cannot see"
        what = f"{who} ({seen.command})" if seen.command else who
        if not force:
            raise Conflict(
                f"port {spec.port} ({spec.alias}) is in use by {what}",
                hint="--force stops it if it is an MLX server; other processes are never stopped",
            )
        if seen.mlx_kind is None or seen.pid is None:
            raise Conflict(
                f"port {spec.port} ({spec.alias}) is in use by {what}, which is not an MLX "
                "server: --force never stops other processes",
                hint="stop it yourself or choose another slot",
            )
        await self._stop(seen.pid)
        return {"pid": seen.pid, "command": seen.command, "kind": seen.mlx_kind}

    # Helpers ---------------------------------------------------------------------

    async def _model(self, reference: str) -> ModelRecord:
        """The registered model, or — for an `org/repo` not registered yet — pulled from HF."""
        try:
            return self.registry.resolve(reference)
        except NotFound as e:
            if not looks_like_hf(reference):
                hint = f"{e.hint}; " if e.hint else ""
                raise NotFound(
                    e.message, hint=f"{hint}to fetch it from Hugging Face: mlxctl pull {reference}"
                ) from None
        slug = await asyncio.to_thread(self._pull, reference)
        return self.registry.resolve(slug)

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

    def _ours(self, slot: SlotRecord, seen: Observed) -> bool:
        if seen.mlx_kind != "mlxctl worker":
            return False
        return seen.pid == slot.pid or (slot.model is not None and seen.model == slot.model)

    def _url(self, port: int, path: str) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "*") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{path}"

    def _with_log(self, port: int, message: str) -> str:
        line = last_error_line(self.log_path(port))
        detail = f": {line}" if line and line not in message else ""
        return f"{message}{detail} (log: {self.log_path(port)})"


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    return probe.alive(pid)


def _create_time(pid: int | None) -> str | None:
    if pid is None:
        return None
    try:
        return datetime.fromtimestamp(psutil.Process(pid).create_time(), UTC).isoformat()
    except psutil.Error:
        return None
