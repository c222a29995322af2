"""mlxctl's own API: what runs, load and unload, budget; what the CLI talks to.

    GET  /health                 liveness, version and `home` (an id of the MLXCTL_HOME it
                                 serves: the CLI's default-daemon check; no API key needed)
    GET  /api/admin/ps           loaded models, on demand and on slots (`slot`: port and
                                 alias, `pinned`): state, memory (estimated and measured),
                                 expiry, requests in flight
    GET  /api/admin/status       budget, used, free, and the same models
    POST /api/admin/load         {"model", "keep_alive"?, "preset"?}  load now (with a
                                 config.yaml preset), wait until ready
    POST /api/admin/unload       {"model"}  unload now (or after in-flight requests);
                                 the exact name, never a prefix; 409 for a model on a
                                 slot (unload the slot)

Errors use the OpenAI envelope (`api/errors.py`), like the rest of the daemon.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl import __version__
from mlxctl.api.body import keep_alive_field, model_field, name_field, shard_field
from mlxctl.api.errors import error_response
from mlxctl.httpguard import json_object
from mlxctl.router import Router
from mlxctl.scheduler import DEFAULT, KeepAlive, ModelStatus, Scheduler, SchedulerStatus
from mlxctl.scheduler.keepalive import format_keep_alive
from mlxctl.supervision import memory

PREFIX = "/api/admin"


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route(f"{PREFIX}/ps", ps, methods=["GET"]),
        Route(f"{PREFIX}/status", status, methods=["GET"]),
        Route(f"{PREFIX}/load", load, methods=["POST"]),
        Route(f"{PREFIX}/unload", unload, methods=["POST"]),
    ]


async def health(request: Request) -> Response:
    draining = bool(getattr(request.app.state, "draining", False))
    body = {
        "status": "draining" if draining else "ok",
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - request.app.state.started, 3),
        "home": request.app.state.settings.home_id,
    }
    return JSONResponse(body, status_code=503 if draining else 200)


async def ps(request: Request) -> Response:
    snapshot = await _scheduler(request).status()
    models = await describe(snapshot.models, request.app.state.http)
    return JSONResponse({"models": _with_options(request.app, models)})


async def status(request: Request) -> Response:
    return JSONResponse(await status_data(request.app))


async def status_data(app: Starlette) -> dict[str, Any]:
    """The body of `GET /api/admin/status` (the dashboard streams it too)."""
    snapshot = await app.state.scheduler.status()
    models = await describe(snapshot.models, app.state.http)
    measured = [m["measured"]["total_bytes"] for m in models if m["measured"]["total_bytes"]]
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - app.state.started, 3),
        "daemon_rss_bytes": memory.rss(os.getpid()),
        **budget(snapshot),
        "measured_bytes": sum(measured),
        "models": _with_options(app, models),
    }


async def load(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        record = _router(request).resolve(model_field(body))
        keep_alive: KeepAlive = DEFAULT
        if body.get("keep_alive") is not None:
            keep_alive = keep_alive_field(body["keep_alive"])
        if body.get("preset") is not None:
            await request.app.state.config.use_preset(record, name_field(body, "preset"))
        if body.get("shard") is not None:
            await request.app.state.config.use_shard(record, shard_field(body["shard"]))
        await _scheduler(request).load(record, keep_alive)
        snapshot = await _scheduler(request).status()
        rows = [m for m in snapshot.models if m.model == record.slug]
        described = _with_options(request.app, await describe(rows, request.app.state.http))
        return JSONResponse(described[0] if described else {"model": record.slug})
    except Exception as e:
        return error_response(e)


async def unload(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        # Destructive: the exact name only, so `unload q` never stops `qwen` (docs/store.md).
        record = _router(request).registry.resolve_exact(model_field(body))
        unloaded = await _scheduler(request).unload(record.slug)
        request.app.state.config.options.load_shards.pop(record.slug, None)  # `load --hosts`
    except Exception as e:
        return error_response(e)
    return JSONResponse({"model": record.slug, "unloaded": unloaded})


def budget(snapshot: SchedulerStatus) -> dict[str, Any]:
    """The budget and who holds it; slots' models count in `used` (and `pinned_bytes`),
    not against `max_loaded_models`."""
    loaded = [m for m in snapshot.models if m.holds_memory]
    pinned = sum(1 for m in loaded if m.slot is not None)
    return {
        "budget_bytes": snapshot.budget,
        "budget": snapshot.budget_text,
        "used_bytes": snapshot.used,
        "pinned_bytes": snapshot.pinned,
        "free_bytes": snapshot.free,
        "max_loaded_models": snapshot.max_loaded,
        "loaded_models": len(loaded),
        "on_demand_models": len(loaded) - pinned,
        "slot_models": pinned,
        "closing": snapshot.closing,
    }


async def describe(rows: list[ModelStatus], http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """ps rows as JSON, each with a fresh memory reading of its worker."""

    async def one(row: ModelStatus) -> dict[str, Any]:
        data = row.to_dict()
        data["keep_alive_text"] = format_keep_alive(row.keep_alive)
        worker = row.worker
        reading = None
        if worker is not None and row.state == "ready":
            reading = await memory.measure(http, worker.pid, worker.base_url, worker.headers)
        elif worker is not None:
            reading = memory.reading(worker.pid, None)
        data["measured"] = {
            "rss_bytes": reading.rss if reading else None,
            "mlx_active_bytes": reading.mlx_active if reading else None,
            "mlx_peak_bytes": reading.mlx_peak if reading else None,
            "mlx_cache_bytes": reading.mlx_cache if reading else None,
            "total_bytes": reading.total if reading else None,
        }
        log_path = getattr(worker, "log_path", None)
        data["log"] = str(log_path) if log_path else None
        return data

    return list(await asyncio.gather(*(one(row) for row in rows)))


def _with_options(app: Starlette, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ps rows with each model's options (config.yaml) and the preset they came from."""
    for row in rows:
        options = app.state.config.options_of(row["model"])
        row["options"] = options
        row["preset"] = options["preset"] if options else None
    return rows


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


def _router(request: Request) -> Router:
    router: Router = request.app.state.router
    return router
