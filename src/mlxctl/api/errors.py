"""The daemon's OpenAI error envelope, built in one place.

`{"error": {"message", "type", "param", "code"}}`, built by the shared
`mlxctl.openai_error` (the worker uses the same module); this one maps the
daemon's own exceptions onto it. Before the first byte an error is a JSON response with a real
status (`error_response`); after streaming began it is a final SSE event
(`error_event`), and the stream ends without `[DONE]`.

    MlxctlError                 status
    ├── InvalidInput            400 invalid_request_error (so are pydantic ValidationErrors)
    ├── NotFound                404 not_found_error (model_not_found)
    ├── Conflict                409 conflict
    ├── Forbidden               403 forbidden
    ├── Busy                    429 rate_limit_error + Retry-After
    ├── WorkerLost              502 server_error (WorkerTimeout: 504)
    └── other SchedulerErrors   503 server_error + Retry-After
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from mlxctl.errors import Conflict, Forbidden, InvalidInput, MlxctlError, NotFound
from mlxctl.openai_error import APIError, error_body
from mlxctl.scheduler.errors import SchedulerError

__all__ = [
    "OPENAI",
    "APIError",
    "OpenAIDialect",
    "admin_error_body",
    "admin_error_response",
    "error_body",
    "error_event",
    "error_response",
    "to_api_error",
]

log = logging.getLogger("mlxctl.api")


def to_api_error(exc: BaseException) -> APIError:
    """Map anything raised while serving a request to what the client sees."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ValidationError):  # operation arguments built by a dialect handler
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or None
        return APIError(400, f"'{field}': {problem['msg']}", param=field, code="invalid_value")
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
        if isinstance(exc, Forbidden):
            return APIError(403, message, code="forbidden")
        return APIError(503, message, code="unavailable", headers={"Retry-After": "5"})
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, f"Internal error: {type(exc).__name__}: {exc}", code="internal_error")


def error_response(exc: BaseException) -> JSONResponse:
    error = to_api_error(exc)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def admin_error_body(exc: BaseException) -> tuple[APIError, dict[str, Any]]:
    """The admin API's envelope: the OpenAI one, the next step in its own `hint` field
    (the CLI prints message and hint as it does for a local error)."""
    error = to_api_error(exc)
    body = error.body()
    if isinstance(exc, MlxctlError) and exc.hint and not isinstance(exc, SchedulerError):
        body["error"].update(message=exc.message, hint=exc.hint)
    return error, body


def admin_error_response(exc: BaseException) -> JSONResponse:
    error, body = admin_error_body(exc)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def error_event(exc: BaseException) -> bytes:
    """The final SSE event of a stream that failed after its first byte."""
    body = json.dumps(to_api_error(exc).body(), ensure_ascii=False, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


class OpenAIDialect:
    """How the router reports errors for OpenAI routes (before and after the first byte)."""

    name = "openai"

    def error_response(self, exc: BaseException) -> Response:
        return error_response(exc)

    def stream_error(self, exc: BaseException) -> bytes:
        return error_event(exc)


OPENAI = OpenAIDialect()
