"""The Ollama error envelope, built in one place: `{"error": "<message>"}`.

Status and message come from `api.errors.to_api_error`, so every dialect answers
the same failure with the same status (404 unknown model, 400 bad field, 429
busy with Retry-After, 502 worker lost). Before the first byte an error is a
JSON response; after NDJSON streaming began it is a final `{"error": ...}` line.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from mlxctl.api.dialect import Dialect
from mlxctl.api.errors import APIError, to_api_error


def error_body(message: str) -> dict[str, Any]:
    """The one Ollama error envelope."""
    return {"error": message}


def error_response(exc: BaseException) -> JSONResponse:
    error = to_api_error(exc)
    return JSONResponse(error_body(error.message), status_code=error.status, headers=error.headers)


def error_line(exc: BaseException) -> bytes:
    """The last NDJSON line of a stream that failed after its first byte."""
    body = error_body(to_api_error(exc).message)
    return json.dumps(body, ensure_ascii=False).encode() + b"\n"


def extra_fields(route: str, names: str) -> APIError:
    return APIError(400, f"{route} does not support the field(s) {names}", code="invalid_value")


OLLAMA = Dialect("ollama", error_response, error_line, "application/x-ndjson", extra_fields)
