"""Run the daemon under uvicorn, with a graceful SIGTERM.

On SIGTERM or SIGINT the daemon stops taking new requests (new connections are
refused, requests on open connections get 503), lets running requests finish
for up to `shutdown_grace` seconds, then the app's lifespan stops every worker
and the process exits 0. Once listening it writes one JSON line,
`{"event": "daemon.listening", "host", "port", "pid"}`, to stderr. Log lines go to
stderr, or with `MLXCTL_LOG_FILE` to that file, rotated at `MLXCTL_LOG_MAX_BYTES`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from mlxctl.api.app import check_settings, create_app
from mlxctl.listen import bind
from mlxctl.settings import Settings

log = logging.getLogger("mlxctl.daemon")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; access lines (already JSON) are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if message.startswith("{"):
            try:
                line.update(json.loads(message))
            except ValueError:
                line["msg"] = message
        else:
            line["msg"] = message
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info", settings: Settings | None = None) -> None:
    """JSON lines to stderr, or to `MLXCTL_LOG_FILE`, rotated while the daemon runs."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    log_file = settings.log_file if settings is not None else None
    if settings is not None and log_file is not None:
        path = log_file.expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            path, maxBytes=settings.log_max_bytes, backupCount=settings.log_backups
        )
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per request comes from the access log; httpx would add one per hop.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class DaemonServer(uvicorn.Server):
    """uvicorn, plus: the first exit signal flips the app into draining (503s)."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.daemon_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.daemon_app.state.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # As uvicorn's, minus re-raising the signal afterwards: a graceful stop exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def serve(settings: Settings, host: str, port: int, *, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    check_settings(settings, host)
    configure_logging(log_level, settings)
    app = create_app(settings, bind_host=host)
    sock = bind(host, port)
    actual = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace)),
        # The plain asyncio loop even when uvloop is installed: shutdown behaves as tested.
        loop="asyncio",
    )
    server = DaemonServer(config, app)
    listening = {"event": "daemon.listening", "host": host, "port": actual, "pid": os.getpid()}
    sys.stderr.write(json.dumps(listening) + "\n")
    sys.stderr.flush()
    server.run(sockets=[sock])
    return 0 if server.started else 1
