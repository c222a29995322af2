"""The worker's access log: one JSON line per model request, counted in `Traffic`.

Pure ASGI (streams pass straight through). For each request to a model route it takes
`X-Request-Id` (the daemon passes its own, so both logs share the id) or makes one and
returns it, then, when the response ends, logs the daemon's access-log line (id,
model, status, tokens, time to the first body byte, duration) as one JSON line
(`mlxctl worker` writes it to stderr, the worker's log: `write_lines_to`) and counts
the request for `/v1/worker/stats`. Requests sent straight to a slot's
port are seen here and nowhere else. Health and stats polls are not logged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxctl.traffic import Traffic, request_line

access_log = logging.getLogger("mlxctl.worker.access")
MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
# Where a route handler leaves its `worker.completion.Completion`, for the token counts.
COMPLETION_KEY = "completion"


class AccessLog:
    def __init__(self, app: ASGIApp, *, traffic: Traffic, model: str) -> None:
        self.app = app
        self.traffic = traffic
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in MODEL_ROUTES:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        raw_id = headers.get("x-request-id")
        request_id = raw_id.decode("latin-1") if raw_id else uuid.uuid4().hex[:16]
        status, first_byte, complete = 500, None, False

        async def send_logged(message: Message) -> None:
            nonlocal status, first_byte, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            elif message["type"] == "http.response.body":
                if first_byte is None and message.get("body"):
                    first_byte = time.perf_counter()
                complete = complete or not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            seconds = time.perf_counter() - started
            ttft = None if first_byte is None else first_byte - started
            prompt, completion = _tokens(scope)
            path: str = scope["path"]
            self.traffic.observe(path, status, ttft=ttft, seconds=seconds)
            line = request_line(
                request_id=request_id,
                method=scope.get("method"),
                path=path,
                model=self.model,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                ttft=ttft,
                seconds=seconds,
                error=None if complete else "client_disconnected",
            )
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            access_log.info("%s", json.dumps({"time": now, **line}))


def write_lines_to(stream: TextIO) -> None:
    """Access lines as bare JSON lines on `stream` (the worker process's stderr)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def _tokens(scope: Scope) -> tuple[int | None, int | None]:
    run = scope.get("state", {}).get(COMPLETION_KEY)
    if run is None or not getattr(run, "started", False):
        return None, None
    usage = run.usage()
    return usage["prompt_tokens"], usage["completion_tokens"]
