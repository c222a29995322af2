"""Run a worker app under uvicorn, on a socket bound before the model loads.

Binding first lets `--port 0` pick a free port (reported in the audit line and
in a `listening` line) and lets `/health` say `loading` while the model loads.
SIGINT/SIGTERM start uvicorn's graceful shutdown: stop accepting, let running
requests finish for up to `graceful_timeout` seconds, then the app's lifespan
closes the engine. A model that fails to load ends the process with exit code 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable

import uvicorn

from mlxctl.httpguard import GuardPolicy
from mlxctl.listen import bind
from mlxctl.settings import Settings
from mlxctl.worker import audit
from mlxctl.worker.app import ServedModel, WorkerEngine, WorkerState, create_app

log = logging.getLogger("mlxctl.worker")


def run_worker(
    model: ServedModel,
    load_engine: Callable[[], WorkerEngine],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    graceful_timeout: float = 30.0,
    log_level: str = "info",
) -> int:
    """Serve until told to stop; returns the process exit code. With `api_key`, every
    route but /health requires it."""
    sock = bind(host, port)
    actual_port = int(sock.getsockname()[1])
    failed: list[BaseException] = []
    server: uvicorn.Server | None = None

    def ready(state: WorkerState) -> None:
        record = audit.audit_record(state, host=host, port=actual_port, key_required=bool(api_key))
        audit.emit(record)

    def failure(error: BaseException) -> None:
        failed.append(error)
        if server is not None:
            server.should_exit = True

    settings = Settings.from_env()
    guard = GuardPolicy.from_settings(settings, bind_host=host, api_key=api_key)
    app = create_app(
        model, load_engine, on_ready=ready, on_failure=failure, guard=guard, settings=settings
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
        # The plain asyncio loop even when uvloop is installed: shutdown behaves as tested.
        loop="asyncio",
        access_log=False,
    )
    server = uvicorn.Server(config)
    listening = {"event": "worker.listening", "host": host, "port": actual_port, "pid": os.getpid()}
    sys.stderr.write(json.dumps(listening) + "\n")
    sys.stderr.flush()
    server.run(sockets=[sock])
    if failed:
        log.error("worker stopped: the model failed to load: %s", failed[0])
        return 1
    return 0
