"""The config routes of mlxctl's own API, and its metrics as JSON.

    GET  /api/admin/config         the effective config: each setting with its value and
                                   source (default/file/env), the file's model sections,
                                   aliases and presets, every registered model's options,
                                   and `problems` (names that match no model, missing files)
    POST /api/admin/config/reload  validate config.yaml and apply it (400 with the line and
                                   field when invalid: the config in use stays)
    GET  /api/admin/metrics        the figures of /metrics as JSON: daemon-wide, and per model

Errors use the OpenAI envelope (`api/errors.py`), like the rest of the admin API.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.errors import error_response
from mlxctl.config.layers import sources
from mlxctl.config.live import LiveConfig
from mlxctl.config.verify import problems
from mlxctl.settings import Settings, is_secret

PREFIX = "/api/admin"


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/config", show, methods=["GET"]),
        Route(f"{PREFIX}/config/reload", reload, methods=["POST"]),
        Route(f"{PREFIX}/metrics", metrics_json, methods=["GET"]),
    ]


async def show(request: Request) -> Response:
    live: LiveConfig = request.app.state.config
    return JSONResponse(effective(live))


async def reload(request: Request) -> Response:
    live: LiveConfig = request.app.state.config
    try:
        report = await live.reload()
    except Exception as e:
        return error_response(e)
    return JSONResponse(report.as_dict())


async def metrics_json(request: Request) -> Response:
    metrics = request.app.state.metrics
    await metrics.refresh(request.app.state.scheduler, request.app.state.http)
    return JSONResponse(as_json(metrics.registry))


def effective(live: LiveConfig) -> dict[str, Any]:
    """The config in force, as `mlxctl config show` prints it (secrets masked)."""
    config = live.config
    file_settings = config.settings if config is not None else {}
    origin = sources(Settings, live.environ, file_settings)
    settings: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(live.settings, f.name)
        if is_secret(f.name) and value:
            value = "********"
        shown = str(value) if value is not None and not isinstance(value, int | float) else value
        settings[f.name] = {"value": shown, "source": origin[f.name]}
    models = {}
    records = live.registry.list() if live.registry is not None else []
    for record in records:
        models[record.slug] = live.options.for_model(record).as_dict()
    return {
        "path": str(live.path),
        "file": config is not None,
        "settings": settings,
        "models": models,
        "sections": {k: v.model_dump(exclude_none=True) for k, v in _items(config, "models")},
        "aliases": dict(config.aliases) if config is not None else {},
        "presets": {k: v.model_dump(exclude_none=True) for k, v in _items(config, "presets")},
        "problems": problems(config, records) if config is not None else [],
        "pid": os.getpid(),
    }


def _items(config: Any, name: str) -> list[tuple[str, Any]]:
    return list(getattr(config, name).items()) if config is not None else []


def as_json(registry: CollectorRegistry) -> dict[str, Any]:
    """Every sample of `registry`: `daemon` holds those without a model label, `models`
    those with one, by model. A sample with other labels is a list of {labels, value}."""
    daemon: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = dict(sample.labels)
            model = labels.pop("model", None)
            into = daemon if model is None else models.setdefault(model or "", {})
            if labels:
                into.setdefault(sample.name, []).append({**labels, "value": sample.value})
            else:
                into[sample.name] = sample.value
    return {"daemon": daemon, "models": models}
