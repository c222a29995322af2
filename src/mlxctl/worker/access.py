"""The worker's access log: one JSON line per model request, counted in `Traffic`.

Pure ASGI (streams pass straight through). For each request to a model route it takes
`X-Request-Id` (the daemon passes its own, so both logs share the id) or makes one and
returns it, then, when the response ends, writes the daemon's access-log line (id,
model, status, tokens, time to the first body byte, duration) to stderr, the worker's
log, and counts the request for `/v1/worker/stats`. Requests sent straight to a slot's
port are seen here and nowhere else. Health and stats polls are not logged.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxctl.traffic import Traffic, request_line

MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
# Where a route handler leaves its `worker.completion.Completion`, for the token counts.
COMPLETION_KEY = "completion"


class AccessLog:
    def __init__(
        self, app: ASGIApp, *, traffic: Traffic, model: str, stream: TextIO | None = None
    ) -> None:
        self.app = app
        self.traffic = traffic
        self.model = model
        self.stream = stream

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
            self._write({"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **line})

    def _write(self, line: dict[str, Any]) -> None:
        out = self.stream if self.stream is not None else sys.stderr
        out.write(json.dumps(line) + "\n")
        out.flush()


def _tokens(scope: Scope) -> tuple[int | None, int | None]:
    run = scope.get("state", {}).get(COMPLETION_KEY)
    if run is None or not getattr(run, "started", False):
        return None, None
    usage = run.usage()
    return usage["prompt_tokens"], usage["completion_tokens"]
