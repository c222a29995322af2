"""The Anthropic error envelope, built in one place.

`{"type": "error", "error": {"type": ..., "message": ...}}` with Anthropic's
error types. Status and message come from `api.errors.to_api_error` (the same
status for the same failure in every dialect). After streaming began, an error
is a final `event: error` SSE event.

    400 invalid_request_error   401 authentication_error   403 permission_error
    404 not_found_error         413 request_too_large      429 rate_limit_error
    503 overloaded_error        other 5xx api_error
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from mlxctl.api.dialect import Dialect
from mlxctl.api.errors import APIError, to_api_error

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    """The one Anthropic error envelope."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_response(exc: BaseException) -> JSONResponse:
    error = to_api_error(exc)
    body = error_body(error.status, error.message)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def error_event(exc: BaseException) -> bytes:
    """The last SSE event of a stream that failed after its first byte."""
    error = to_api_error(exc)
    data = json.dumps(error_body(error.status, error.message), ensure_ascii=False)
    return b"event: error\ndata: " + data.encode() + b"\n\n"


def extra_fields(route: str, names: str) -> APIError:
    return APIError(400, f"{names}: Extra inputs are not permitted", code="invalid_request")


ANTHROPIC = Dialect("anthropic", error_response, error_event, "text/event-stream", extra_fields)
