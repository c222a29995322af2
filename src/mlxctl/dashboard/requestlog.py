"""The last requests the daemon answered, for the dashboard's live tail.

    GET /api/admin/requests?after=N   {"requests": [line, ...], "last": N}

`RequestLog` is a logging handler on the access log (`mlxctl.access`, written by
`api/middleware.py` when a response ends): it keeps the last lines in memory, each
numbered, so a page asks only for what it has not seen. Nothing is written anywhere.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.errors import APIError, error_response

PATH = "/api/admin/requests"
KEEP = 500
ACCESS_LOG = "mlxctl.access"


class RequestLog(logging.Handler):
    def __init__(self, keep: int = KEEP) -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[dict[str, Any]] = deque(maxlen=keep)
        self.last = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if not isinstance(line, dict):
            return
        with self._lock:
            self.last += 1
            self.lines.append({"seq": self.last, "ts": round(record.created, 3), **line})

    def since(self, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line["seq"] > after]

    def attach(self) -> None:
        logging.getLogger(ACCESS_LOG).addHandler(self)

    def detach(self) -> None:
        logging.getLogger(ACCESS_LOG).removeHandler(self)


def routes() -> list[Route]:
    return [Route(PATH, list_requests, methods=["GET"])]


async def list_requests(request: Request) -> Response:
    raw = request.query_params.get("after", "0")
    if not raw.isdigit():
        return error_response(
            APIError(400, "'after' must be a whole number", param="after", code="invalid_value")
        )
    log: RequestLog = request.app.state.dashboard.requests
    return JSONResponse({"requests": log.since(int(raw)), "last": log.last})
