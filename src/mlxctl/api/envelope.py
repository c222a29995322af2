"""Which dialect's error envelope a path answers in.

Route handlers build their own dialect's errors. Errors raised before any route
runs — an unknown path, a wrong method, a missing API key, a draining daemon —
are answered here, in the envelope of the client that is most likely asking.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlxctl.api import errors
from mlxctl.api.anthropic import errors as anthropic_errors
from mlxctl.api.ollama import errors as ollama_errors
from mlxctl.openai_error import from_starlette


def dialect_of(path: str) -> str:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path == "/" or (path.startswith("/api/") and not path.startswith("/api/admin/")):
        return "ollama"
    return "openai"


def error_response_for(path: str, exc: BaseException) -> Response:
    dialect = dialect_of(path)
    if dialect == "anthropic":
        return anthropic_errors.error_response(exc)
    if dialect == "ollama":
        return ollama_errors.error_response(exc)
    return errors.error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the path's envelope."""
    return error_response_for(request.url.path, from_starlette(request, exc))
