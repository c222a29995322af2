"""The daemon's OpenAI error envelope, built in one place.

`{"error": {"message", "type", "param", "code"}}`, the same shape as the worker's
`mlxctl.worker.openai_errors.error_body` (tests/api/test_errors.py holds them
equal). The worker module is not imported: it pulls in MLX, which the daemon
never loads. Before the first byte an error is a JSON response with a real
status (`error_response`); after streaming began it is a final SSE event
(`error_event`), and the stream ends without `[DONE]`.

    MlxctlError                 status
    ├── InvalidInput            400 invalid_request_error
    ├── NotFound                404 not_found_error (model_not_found)
    ├── Busy                    429 rate_limit_error + Retry-After
    ├── WorkerLost              502 server_error
    └── other SchedulerErrors   503 server_error + Retry-After
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlxctl.errors import Conflict, InvalidInput, MlxctlError, NotFound
from mlxctl.scheduler.errors import SchedulerError

log = logging.getLogger("mlxctl.api")

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass
class APIError(Exception):
    """An error answered to the client: status, envelope fields and headers."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if self.type is None:
            self.type = _TYPES.get(self.status, "server_error")

    def body(self) -> dict[str, Any]:
        return error_body(
            self.message, type=self.type or "server_error", param=self.param, code=self.code
        )


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The one OpenAI error envelope of the daemon."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_api_error(exc: BaseException) -> APIError:
    """Map anything raised while serving a request to what the client sees."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, SchedulerError):
        return APIError(exc.status, exc.message, code=exc.code, headers=exc.headers())
    if isinstance(exc, MlxctlError):
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        if isinstance(exc, NotFound):
            return APIError(404, message, code="model_not_found", param="model")
        if isinstance(exc, InvalidInput):
            return APIError(400, message, code="invalid_value")
        if isinstance(exc, Conflict):
            return APIError(409, message, code="conflict")
        return APIError(503, message, code="unavailable", headers={"Retry-After": "5"})
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, f"Internal error: {type(exc).__name__}: {exc}", code="internal_error")


def error_response(exc: BaseException) -> JSONResponse:
    error = to_api_error(exc)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def error_event(exc: BaseException) -> bytes:
    """The final SSE event of a stream that failed after its first byte."""
    body = json.dumps(to_api_error(exc).body(), ensure_ascii=False, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    error = APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {}))
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class OpenAIDialect:
    """How the router reports errors for OpenAI routes (before and after the first byte)."""

    name = "openai"

    def error_response(self, exc: BaseException) -> Response:
        return error_response(exc)

    def stream_error(self, exc: BaseException) -> bytes:
        return error_event(exc)


OPENAI = OpenAIDialect()
