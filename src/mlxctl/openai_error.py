"""The OpenAI error envelope and the one error mapping, shared by the worker and the daemon.

Every OpenAI-dialect error body is `{"error": {"message", "type", "param", "code"}}`
and is built by `error_body`. `to_api_error` turns anything raised while serving a
request into an `APIError`: an `MlxctlError` by what its class says (`status`,
`code`, `param`, `retry_after`: the registry's, the scheduler's and the engine's
errors alike), the hint in the message; anything unexpected is a 500. The other
dialects' envelopes start from it too. This module imports no MLX, so the daemon
can use it without loading a model runtime.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from mlxctl.errors import MlxctlError

log = logging.getLogger("mlxctl")

# The `type` OpenAI uses for each status we answer with.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
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
    """The one OpenAI error envelope; every OpenAI-dialect error body comes from here."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_api_error(exc: BaseException) -> APIError:
    """What the client sees for anything raised while serving a request."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, MlxctlError):
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        return APIError(exc.status, message, param=exc.param, code=exc.code, headers=exc.headers())
    from pydantic import ValidationError  # here: a worker never imports pydantic otherwise

    if isinstance(exc, ValidationError):  # operation arguments built by a dialect handler
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or None
        return APIError(400, f"'{field}': {problem['msg']}", param=field, code="invalid_value")
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, f"Internal error: {type(exc).__name__}: {exc}", code="internal_error")


def error_response(exc: BaseException) -> JSONResponse:
    """The error as a JSON response with its status (before the first byte)."""
    error = to_api_error(exc)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def from_starlette(request: Request, exc: Exception) -> APIError:
    """Starlette's own errors (unknown route, wrong method) as an APIError."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {}))
