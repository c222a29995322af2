"""The worker's side of the OpenAI error envelope (`mlxctl.openai_error`).

Every error the worker answers with has the body
`{"error": {"message", "type", "param", "code"}}`: before the first byte as a
JSON response with a real HTTP status (`error_response`), after streaming began
as the final SSE event (`sse.error_event`, which calls `error_body`). Exceptions
map through the one `to_api_error` (the engine's QueueFull is a 429, ContextOverflow
a 400, each by its class). `tests/worker/test_openai_errors.py` checks the shape for
every path.

    invalid_request(...)      400 invalid_request_error, names the param
    unsupported(param)        400 unsupported_parameter
    http_exception_handler    Starlette 404/405 → the same envelope
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlxctl.openai_error import APIError, error_body, error_response, from_starlette, to_api_error

__all__ = [
    "APIError",
    "api_error_handler",
    "error_body",
    "error_response",
    "http_exception_handler",
    "invalid_request",
    "to_api_error",
    "unsupported",
]


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 naming the offending request field."""
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, why: str = "is not supported by this server") -> APIError:
    return APIError(400, f"'{param}' {why}", param=param, code="unsupported_parameter")


async def api_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the OpenAI envelope."""
    return error_response(from_starlette(request, exc))
