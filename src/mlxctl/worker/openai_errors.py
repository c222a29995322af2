"""The OpenAI error envelope, built in one place.

Every error the worker answers with has the body
`{"error": {"message", "type", "param", "code"}}`: before the first byte as a
JSON response with a real HTTP status (`error_response`), after streaming began
as the final SSE event (`sse.error_event`, which calls `error_body`).
`tests/worker/test_openai_errors.py` checks the shape for every path.

    APIError                     carries status, type, param, code and headers
    ├── invalid_request(...)      400 invalid_request_error, names the param
    ├── from_exception(exc)       QueueFull 429, ContextOverflow 400, Unavailable 503, else 500
    └── http_exception_handler    Starlette 404/405 → the same envelope
"""

from __future__ import annotations

import logging
import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlxctl.engine.generator import ContextOverflow, QueueFull
from mlxctl.errors import Unavailable

log = logging.getLogger("mlxctl.worker")

# The `type` OpenAI uses for each status we answer with.
_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answered to the client; `headers` (e.g. Retry-After) go on the response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "api_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The one OpenAI error envelope; every error body the worker sends comes from here."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 naming the offending request field."""
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, why: str = "is not supported by this server") -> APIError:
    return APIError(400, f"'{param}' {why}", param=param, code="unsupported_parameter")


def from_exception(exc: BaseException) -> APIError:
    """Map any exception from parsing or the engine to the error the client sees."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, QueueFull):
        retry = max(1, math.ceil(exc.retry_after))
        return APIError(
            429,
            f"The worker's batch and queue are full; retry in {retry} s.",
            code="queue_full",
            headers={"Retry-After": str(retry)},
        )
    if isinstance(exc, ContextOverflow):
        return APIError(
            400,
            f"This model's maximum context length is {exc.context_length} tokens, but the "
            f"prompt has {exc.prompt_tokens} tokens. Shorten the messages or the prompt.",
            param="messages",
            code="context_length_exceeded",
        )
    if isinstance(exc, Unavailable):
        return APIError(503, exc.message, code="unavailable", headers={"Retry-After": "1"})
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, f"Internal error: {type(exc).__name__}: {exc}", code="internal_error")


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(from_exception(exc))


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the OpenAI envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    error = APIError(exc.status_code, message, code=_code_for(exc.status_code))
    return JSONResponse(error.body(), status_code=exc.status_code, headers=dict(exc.headers or {}))


def _code_for(status: int) -> str | None:
    return {404: "not_found", 405: "method_not_allowed"}.get(status)
