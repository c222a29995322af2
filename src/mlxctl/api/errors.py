"""The daemon's OpenAI error envelope: the admin variant, the SSE error event, the dialect.

`{"error": {"message", "type", "param", "code"}}`, built by the shared
`mlxctl.openai_error` (the worker uses the same module), whose `to_api_error` maps
every exception by what its class says (`mlxctl.errors` draws them with their
statuses; the scheduler's are in `scheduler/errors.py`). Before the first byte an
error is a JSON response with a real status (`error_response`); after streaming
began it is a final SSE event (`error_event`), and the stream ends without `[DONE]`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from mlxctl.errors import MlxctlError
from mlxctl.openai_error import APIError, error_body, error_response, to_api_error

__all__ = [
    "APIError",
    "admin_error_body",
    "admin_error_response",
    "error_body",
    "error_event",
    "error_response",
    "to_api_error",
]


def admin_error_body(exc: BaseException) -> tuple[APIError, dict[str, Any]]:
    """The admin API's envelope: the OpenAI one, the next step in its own `hint` field
    (the CLI prints message and hint as it does for a local error)."""
    error = to_api_error(exc)
    body = error.body()
    if isinstance(exc, MlxctlError) and exc.hint:
        body["error"].update(message=exc.message, hint=exc.hint)
    return error, body


def admin_error_response(exc: BaseException) -> JSONResponse:
    error, body = admin_error_body(exc)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def error_event(exc: BaseException) -> bytes:
    """The final SSE event of a stream that failed after its first byte."""
    body = json.dumps(to_api_error(exc).body(), ensure_ascii=False, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"
