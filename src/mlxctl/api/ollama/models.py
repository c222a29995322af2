"""The Ollama dialect, model management: what Ollama's clients list, show, copy and delete.

    GET  /  HEAD /        "mlxctl is running"        GET  /api/version
    GET  /api/tags        registered models          GET  /api/ps    loaded models
    POST /api/show        details, template, capabilities, model_info
    POST /api/copy        {source, destination}      DELETE /api/delete   {model}
    POST /api/pull        store pull with NDJSON progress (pull.py)
    POST /api/push        store push to an OCI registry (push.py)
    POST /api/create      a store model from {from|files, system, ...} (create.py)
    HEAD/POST /api/blobs/:digest   upload a model file for create (blobs.py)
    POST /api/embed, /api/embeddings                 embeddings (embed.py)

Errors use the Ollama envelope (`errors.py`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlxctl import __version__
from mlxctl.api.admin.operations import context
from mlxctl.api.admin.status import describe
from mlxctl.api.body import name_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.ollama import blobs, create, embed, pull, push
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.capabilities import capabilities, chat_template, ollama_names
from mlxctl.library import catalog
from mlxctl.operations.models import RM, RmArgs
from mlxctl.operations.store import COPY, CopyArgs
from mlxctl.peers import listed
from mlxctl.registry import ModelRecord, Registry, with_registry
from mlxctl.router import Router
from mlxctl.settings import Settings
from mlxctl.store.content.layout import StoreLayout


def routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/copy", copy, methods=["POST"]),
        Route("/api/delete", delete, methods=["DELETE"]),
        Route("/api/pull", pull.pull, methods=["POST"]),
        Route("/api/push", push.push, methods=["POST"]),
        Route("/api/create", create.create, methods=["POST"]),
        *blobs.routes(),
        Route("/api/embed", embed.embed, methods=["POST"]),
        Route("/api/embeddings", embed.embeddings, methods=["POST"]),
    ]


async def root(request: Request) -> Response:
    return PlainTextResponse("mlxctl is running")


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


async def tags(request: Request) -> Response:
    router: Router = request.app.state.router
    records = router.registry.list()
    models = [_entry(r) for r in records]
    for alias, members, first in request.app.state.config.listed(records):
        models.append({**_entry(first), "name": alias, "model": alias, "alias_of": members})
    names = [m["name"] for m in models]
    for remote in listed(request.app.state.peers, names, request.headers):
        entry = _entry(remote.record)
        models.append({**entry, "name": remote.name, "model": remote.name, "host": remote.host})
    return JSONResponse({"models": models})


async def ps(request: Request) -> Response:
    router: Router = request.app.state.router
    snapshot = await router.scheduler.status()
    rows = await describe(snapshot.models, request.app.state.http)
    models = []
    for row in rows:
        record = router.registry.get(row["model"])
        if record is None or row["state"] == "queued":
            continue
        size = row["measured"]["total_bytes"] or row["estimated_bytes"]
        models.append(
            {
                **_entry(record),
                "size": size,
                "size_vram": size,  # unified memory: all of it is the GPU's
                "expires_at": _expires_at(row),
                "context_length": record.context_length,
            }
        )
    return JSONResponse({"models": models})


@OLLAMA.handler()
async def show(incoming: Incoming) -> Response:
    record = incoming.router.resolve(name_field(incoming.body, "model", "name"))
    settings: Settings = incoming.request.app.state.settings
    # Template, capabilities and ModelSpec read files (GGUF metadata too): off the loop.
    layout = catalog.open_store(settings)
    shown = await anyio.to_thread.run_sync(
        with_registry, settings, lambda r: _show(r, layout, record)
    )
    return JSONResponse(shown)


def _show(registry: Registry, layout: StoreLayout, record: ModelRecord) -> dict[str, Any]:
    template = chat_template(record, store_root=layout.root)
    return {
        "license": "",
        "modelfile": _modelfile(registry, layout, record),
        "parameters": "",
        "template": template,
        "details": _details(record),
        "model_info": _model_info(record),
        "capabilities": ollama_names(capabilities(record, template, store_root=layout.root)),
        "modified_at": _modified(record),
    }


@OLLAMA.handler()
async def copy(incoming: Incoming) -> Response:
    source, target = incoming.body.get("source"), incoming.body.get("destination")
    if not isinstance(source, str) or not isinstance(target, str) or not target:
        raise APIError(400, "'source' and 'destination' must be model names", code="missing")
    args = CopyArgs(source=source, target=target)
    await asyncio.to_thread(COPY.run, context(incoming.request.app), args)
    return Response(status_code=200)


@OLLAMA.handler()
async def delete(incoming: Incoming) -> Response:
    """Ollama's delete: unload, then remove (the admin API's `rm`, confirmed). Only the
    exact name, repo id or `name:tag` deletes: a prefix is refused (404)."""
    args = RmArgs(model=name_field(incoming.body, "model", "name"), confirm=True)
    await asyncio.to_thread(RM.run, context(incoming.request.app), args)
    return Response(status_code=200)


def _entry(record: ModelRecord) -> dict[str, Any]:
    return {
        "name": record.slug,
        "model": record.slug,
        "modified_at": _modified(record),
        "size": record.size_bytes or 0,
        "details": _details(record),
    }


def _details(record: ModelRecord) -> dict[str, Any]:
    family = record.model_type or "unknown"
    return {
        "parent_model": "",
        "format": record.format,
        "family": family,
        "families": [family],
        "parameter_size": _parameter_size(record.parameters),
        "quantization_level": f"Q{record.quant_bits}" if record.quant_bits else "unquantized",
    }


def _model_info(record: ModelRecord) -> dict[str, Any]:
    arch = record.model_type or "unknown"
    info: dict[str, Any] = {"general.architecture": arch}
    if record.parameters is not None:
        info["general.parameter_count"] = record.parameters
    if record.repo_id:
        info["general.basename"] = record.repo_id
    if record.context_length is not None:
        info[f"{arch}.context_length"] = record.context_length
    return info


def _modelfile(registry: Registry, layout: StoreLayout, record: ModelRecord) -> str:
    from mlxctl.library.build import modelfile

    try:
        return modelfile(registry, layout, record.slug)
    except Exception:  # a spec is a courtesy: a model without one still shows
        return f"FROM {record.cache_path}\n"


def _parameter_size(parameters: int | None) -> str:
    if not parameters:
        return ""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if parameters >= scale:
            return f"{parameters / scale:.2f}{unit}"
    return str(parameters)


def _modified(record: ModelRecord) -> str:
    try:
        stamp = Path(record.cache_path).stat().st_mtime
    except OSError:
        stamp = 0.0
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def _expires_at(row: dict[str, Any]) -> str:
    """When the model unloads: in use counts from now, forever is far away (as Ollama)."""
    seconds = row["expires_in"] if row["expires_in"] is not None else row["keep_alive"]
    if seconds is None:
        return "2318-11-24T00:00:00Z"
    moment = datetime.fromtimestamp(time.time() + float(seconds), UTC)
    return moment.isoformat().replace("+00:00", "Z")
