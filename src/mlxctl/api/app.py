"""The daemon's HTTP app: the dialects, the admin API and /metrics over one scheduler.

`create_app(settings)` builds a Starlette app whose lifespan opens the registry,
cleans up workers a crashed daemon left behind, starts the scheduler, and on
shutdown stops every worker before returning. One package per dialect (`openai/`,
`ollama/`, `anthropic/`, `admin/`), each with its own error envelope.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from mlxctl import dashboard
from mlxctl.api import metrics
from mlxctl.api import openapi as openapi_doc
from mlxctl.api.admin import config as admin_config
from mlxctl.api.admin import operations as admin_ops
from mlxctl.api.admin import peers as admin_peers
from mlxctl.api.admin import slots as slots_api
from mlxctl.api.admin import status as admin
from mlxctl.api.anthropic import messages as anthropic
from mlxctl.api.envelope import error_response_for, http_exception_handler
from mlxctl.api.llamacpp import models as llamacpp
from mlxctl.api.middleware import DaemonMiddleware
from mlxctl.api.ollama import blobs as ollama_blobs
from mlxctl.api.ollama import chat as ollama
from mlxctl.api.ollama import models as ollama_models
from mlxctl.api.openai import responses
from mlxctl.api.openai import routes as openai
from mlxctl.api.openai.responses_store import ResponseStore
from mlxctl.config.live import LiveConfig
from mlxctl.httpguard import GuardPolicy, HTTPGuard, LivePolicy, check_bind
from mlxctl.model_map import ModelMap
from mlxctl.peers import Peers, peer_sections
from mlxctl.registry import open_registry
from mlxctl.router import Router, Timeouts
from mlxctl.scheduler import Scheduler, SchedulerConfig
from mlxctl.settings import Settings
from mlxctl.slots import SlotSupervisor
from mlxctl.supervision import pidfile
from mlxctl.supervision.base import WorkerFactory
from mlxctl.supervision.process import SupervisionConfig, process_factory

__all__ = ["check_settings", "create_app", "worker_client"]


def create_app(
    settings: Settings,
    *,
    bind_host: str = "127.0.0.1",
    worker_factory: WorkerFactory | None = None,
    config: SchedulerConfig | None = None,
) -> Starlette:
    """The daemon app, listening on `bind_host` (its Host allow-list starts there);
    `worker_factory` and `config` replace the real ones in tests."""
    scheduler_config = config or SchedulerConfig.from_settings(settings)
    ModelMap.parse(settings.model_map)  # a bad MLXCTL_MODEL_MAP stops the start, with why
    daemon_metrics = metrics.Metrics()
    guard = GuardPolicy.from_settings(
        settings,
        bind_host=bind_host,
        api_key=settings.api_key,
        raw_body_routes=ollama_blobs.upload_routes(settings),
    )
    guard = dataclasses.replace(guard, open_paths=guard.open_paths | dashboard.OPEN_PATHS)
    live_guard = LivePolicy(guard)  # a reload swaps in new hosts, origins, body limit

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        http = worker_client()
        registry = open_registry(settings)
        pidfile.reap(pidfile.run_dir(settings.home))
        # One source of every model's worker options: the estimate and the argv agree.
        live = LiveConfig.start(settings, os.environ, registry)
        options = live.options
        supervision = SupervisionConfig.from_settings(settings, options)
        factory = worker_factory or process_factory(supervision, http)
        scheduler = Scheduler(scheduler_config, factory, options)
        scheduler.start()
        # Slot workers outlive the daemon: closing detaches them, never stops them.
        slots = SlotSupervisor(settings, registry, http, scheduler, supervision)
        app.state.http = http
        app.state.registry = registry
        app.state.scheduler = scheduler
        app.state.slots = slots
        app.state.dashboard = dashboard.Dashboard.start()
        timeouts = Timeouts.from_settings(settings)
        app.state.router = Router(
            registry,
            scheduler,
            http,
            timeouts,
            aliases=slots.model_on,
            config=live,
        )
        app.state.config = live
        app.state.guard = live_guard
        app.state.peers = Peers.start(
            settings.peer_name, peer_sections(live), settings.peer_poll_interval
        )
        watching = live.follow(scheduler, registry, lambda new: _took_settings(app, new))
        await slots.start()
        await live.preload()
        try:
            yield
        finally:
            await watching.aclose()
            await app.state.peers.aclose()
            await app.state.dashboard.close()
            await app.state.slots.close()
            await scheduler.close()
            await http.aclose()
            registry.db.close()

    app = Starlette(
        routes=[
            *openai.routes(),
            *responses.routes(),
            *ollama.routes(),
            *ollama_models.routes(),
            *anthropic.routes(),
            *llamacpp.routes(),
            *admin.routes(),
            *admin_ops.routes(),
            *admin_config.routes(),
            *admin_peers.routes(),
            *slots_api.routes(),
            *metrics.routes(),
            *openapi_doc.routes(),
            *dashboard.routes(),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(DaemonMiddleware, metrics=daemon_metrics),
            Middleware(HTTPGuard, policy=live_guard, respond=error_response_for),
            Middleware(dashboard.BrowserRedirect),
        ],
        exception_handlers={HTTPException: http_exception_handler},
    )
    app.state.settings = settings
    app.state.responses = ResponseStore.from_settings(settings)
    app.state.metrics = daemon_metrics
    app.state.started = time.monotonic()
    app.state.draining = False
    return app


def _took_settings(app: Starlette, new: Settings) -> None:
    """A config reload's settings, where the app reads them per request."""
    app.state.settings = new
    app.state.router.timeouts = Timeouts.from_settings(new)
    app.state.guard.current = app.state.guard.current.with_settings(new)


def worker_client() -> httpx.AsyncClient:
    """The client for talking to workers: no proxies from the environment, no read timeout
    of its own (the router bounds the first byte and the gaps between chunks apart: a long
    prompt may take minutes before its first token). The key goes per request, from each
    worker's own `headers`: an external server never receives it."""
    return httpx.AsyncClient(
        trust_env=False,
        timeout=httpx.Timeout(connect=5.0, read=None, write=60.0, pool=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
    )


def check_settings(settings: Settings, host: str) -> None:
    """Refuse, before anything starts, settings that would open the daemon or its slot
    workers beyond this machine without the key."""
    check_bind(host, settings.api_key)
    check_bind(
        settings.slot_host, settings.api_key, what="run slot workers", setting="MLXCTL_SLOT_HOST"
    )
