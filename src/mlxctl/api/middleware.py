"""The daemon's outer middleware: request id, access log, metrics, draining.

Pure ASGI (no BaseHTTPMiddleware) so streamed responses pass straight through.
For every HTTP request it:
  - takes `X-Request-Id` from the client or makes one, and returns it;
  - answers 503 while the daemon drains (but /health);
  - writes one JSON log line when the response ends: id, model, status, tokens,
    time to first byte, duration; and feeds the same figures to /metrics.
Inside it, `mlxctl.httpguard.HTTPGuard` checks Host, Origin, the API key, the body's
type and size; its refusals are logged here like any answer.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxctl.api.envelope import error_response_for
from mlxctl.api.errors import APIError
from mlxctl.api.metrics import Metrics
from mlxctl.router import Exchange
from mlxctl.traffic import request_line

access_log = logging.getLogger("mlxctl.access")

OPEN_PATHS = frozenset({"/health"})
# Route labels for metrics: known paths as is, anything else lumped together.
KNOWN_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/health",
        "/metrics",
        "/api/admin/ps",
        "/api/admin/status",
        "/api/admin/load",
        "/api/admin/unload",
    }
)


class DaemonMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        request_id = headers.get("x-request-id") or uuid.uuid4().hex[:16]
        exchange = Exchange(request_id=request_id)
        scope.setdefault("state", {})["exchange"] = exchange
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        path: str = scope["path"]
        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                exchange.error = refusal.code
                await error_response_for(path, refusal)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
                exchange.error = exchange.error or scope["state"].get("refusal")
        finally:
            seconds = time.perf_counter() - exchange.started
            route = path if path in KNOWN_ROUTES else "other"
            self.metrics.observe(route, status, exchange, seconds)
            _log(scope, path, status, exchange, seconds)

    def _refusal(self, scope: Scope, path: str) -> APIError | None:
        if path in OPEN_PATHS:
            return None
        app = scope.get("app")
        if app is not None and getattr(app.state, "draining", False):
            return APIError(
                503,
                "mlxctl is shutting down and takes no new requests.",
                code="shutting_down",
                headers={"Retry-After": "5"},
            )
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _log(scope: Scope, path: str, status: int, exchange: Exchange, seconds: float) -> None:
    line = request_line(
        request_id=exchange.request_id,
        method=scope.get("method"),
        path=path,
        model=exchange.model,
        status=status,
        prompt_tokens=exchange.prompt_tokens,
        completion_tokens=exchange.completion_tokens,
        ttft=exchange.ttft,
        seconds=seconds,
        error=exchange.error,
    )
    access_log.info("%s", json.dumps(line))
