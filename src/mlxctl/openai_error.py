"""The OpenAI error envelope, shared by the worker and the daemon.

Every OpenAI-dialect error body is `{"error": {"message", "type", "param", "code"}}`
and is built by `error_body`. Each side maps its own exceptions onto `APIError`:
the worker in `worker/openai_errors.py` (engine errors), the daemon in
`api/errors.py` (scheduler and registry errors). This module imports no MLX, so
the daemon can use it without loading a model runtime.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

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
