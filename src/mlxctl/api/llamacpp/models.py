"""llama.cpp's router API for model management: what Open WebUI's llama.cpp provider drives.

    GET  /models            every registered model with `status.value` as llama-server's
                            router reports it: unloaded | loading | loaded
    POST /models/load       {"model"}  start loading; {"success": true} at once (400 when
                            it is already loading or loaded)
    POST /models/unload     {"model"}  stop it; {"success": true} (400 when not running)
    GET  /models/sse        Server-Sent Events, one per status change:
                            data: {"model", "event": "status_change", "data": {"status"}}

All of it goes through the scheduler, the one door to workers: a load is
`Scheduler.load` (its keep-alive then runs as for any on-demand load), an unload
`Scheduler.unload` (a model on a slot is a 409: unload the slot). A scheduler
`queued` model (waiting for memory) reports `loading`, `unloading` reports `loaded`
until its worker is gone, a failed load `unloaded` with `failed: true`. Errors use the
OpenAI envelope, as llama-server's do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlxctl.api.body import model_field
from mlxctl.api.errors import APIError, error_response
from mlxctl.httpguard import json_object
from mlxctl.registry import ModelRecord
from mlxctl.router import Router
from mlxctl.scheduler import Scheduler, SchedulerStatus
from mlxctl.scheduler.errors import SchedulerError

log = logging.getLogger("mlxctl.api")

UNLOADED, LOADING, LOADED = "unloaded", "loading", "loaded"
_STATUS = {"queued": LOADING, "loading": LOADING, "ready": LOADED, "unloading": LOADED}
# How long load/unload wait for a refusal the scheduler decides at once (no room, slot).
_QUICK_REFUSAL_S = 0.2
_SSE_POLL_S = 1.0  # how often an idle event stream checks that the daemon is not draining


def routes() -> list[Route]:
    return [
        Route("/models", list_models, methods=["GET"]),
        Route("/models/load", load, methods=["POST"]),
        Route("/models/unload", unload, methods=["POST"]),
        Route("/models/sse", sse, methods=["GET"]),
    ]


async def list_models(request: Request) -> Response:
    router = _router(request)
    snapshot = await router.scheduler.status()
    created = int(time.time())
    rows = [_row(r, snapshot, created) for r in router.registry.list()]
    return JSONResponse({"data": rows, "object": "list"})


async def load(request: Request) -> Response:
    try:
        router = _router(request)
        record = router.resolve(model_field(json_object(await request.body())))
        if (
            statuses(await router.scheduler.status()).get(record.slug, _UNLOADED)["value"]
            != UNLOADED
        ):
            raise APIError(400, f"model '{record.slug}' is already running")
        await _start(request, router.scheduler.load(record))
    except Exception as e:
        return error_response(e)
    return JSONResponse({"success": True})


async def unload(request: Request) -> Response:
    try:
        router = _router(request)
        record = router.registry.resolve_exact(model_field(json_object(await request.body())))
        if (
            statuses(await router.scheduler.status()).get(record.slug, _UNLOADED)["value"]
            == UNLOADED
        ):
            raise APIError(400, f"model '{record.slug}' is not running")
        await _start(request, router.scheduler.unload(record.slug))
    except Exception as e:
        return error_response(e)
    return JSONResponse({"success": True})


async def sse(request: Request) -> Response:
    scheduler = _router(request).scheduler
    return StreamingResponse(
        _changes(request, scheduler),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _changes(request: Request, scheduler: Scheduler) -> AsyncIterator[bytes]:
    """One event per model whose status value changed, until the daemon drains."""
    try:
        version = scheduler.version
        known = statuses(await scheduler.status())
        while not request.app.state.draining:
            try:
                version = await asyncio.wait_for(scheduler.changed(version), _SSE_POLL_S)
            except TimeoutError:
                continue
            now = statuses(await scheduler.status())
            for slug in sorted(set(known) | set(now)):
                before, after = known.get(slug, _UNLOADED), now.get(slug, _UNLOADED)
                if before["value"] != after["value"]:
                    yield _event(slug, after)
            known = now
    except SchedulerError:  # shutting down: the stream ends
        return


def statuses(snapshot: SchedulerStatus) -> dict[str, dict[str, Any]]:
    """Each model the scheduler knows → its llama.cpp `status` object."""
    out: dict[str, dict[str, Any]] = {}
    for row in snapshot.models:
        if row.state == "failed":
            out[row.model] = {**_UNLOADED, "failed": True, "exit_code": 1, "reason": row.reason}
        else:
            out[row.model] = {"value": _STATUS.get(row.state, UNLOADED), "args": []}
    return out


_UNLOADED: dict[str, Any] = {"value": UNLOADED, "args": []}


def _row(record: ModelRecord, snapshot: SchedulerStatus, created: int) -> dict[str, Any]:
    return {
        "id": record.slug,
        "aliases": [],
        "tags": [],
        "object": "model",
        "owned_by": "mlxctl",
        "created": created,
        "status": statuses(snapshot).get(record.slug, _UNLOADED),
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
    }


def _event(slug: str, status: dict[str, Any]) -> bytes:
    data: dict[str, Any] = {"status": status["value"]}
    if status["value"] == UNLOADED:
        data["exit_code"] = status.get("exit_code", 0)
    line = {"model": slug, "event": "status_change", "data": data}
    return f"data: {json.dumps(line)}\n\n".encode()


async def _start(request: Request, work: Any) -> None:
    """Run `work` past the response (as llama-server does), but answer a refusal the
    scheduler makes at once (no room, a model on a slot) with its real status."""
    task: asyncio.Task[Any] = asyncio.ensure_future(work)
    state = request.app.state
    if getattr(state, "llamacpp_tasks", None) is None:
        state.llamacpp_tasks = set()  # a reference each, so no task is collected mid-way
    tasks: set[asyncio.Task[Any]] = state.llamacpp_tasks
    tasks.add(task)
    task.add_done_callback(_finished(tasks))
    done, _ = await asyncio.wait({task}, timeout=_QUICK_REFUSAL_S)
    if done:
        task.result()  # raises the refusal


def _finished(tasks: set[asyncio.Task[Any]]) -> Any:
    def forget(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("llama.cpp route: %s", task.exception())

    return forget


def _router(request: Request) -> Router:
    router: Router = request.app.state.router
    return router
