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

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlxctl.engine.generator import ContextOverflow, QueueFull
from mlxctl.errors import Unavailable
from mlxctl.openai_error import APIError, error_body, from_starlette

__all__ = [
    "APIError",
    "api_error_handler",
    "error_body",
    "error_response",
    "from_exception",
    "http_exception_handler",
    "invalid_request",
    "unsupported",
]

log = logging.getLogger("mlxctl.worker")


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
    return error_response(from_starlette(request, exc))
