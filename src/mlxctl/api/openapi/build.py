"""The words the dialect modules write their part of the OpenAPI document in.

A dialect module declares `PATHS` (path → method → operation) and `SCHEMAS`
(component name → JSON Schema). An operation is built by `operation()`: it adds
the responses every daemon route can give (401 without the key, 503 while
draining) in the dialect's error envelope, so a module lists only its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

Schema = dict[str, Any]
Operation = dict[str, Any]
Paths = dict[str, dict[str, Operation]]

# Answered by the middleware on every route but /health: no or wrong key, draining daemon.
ALWAYS = (401, 503)
# A JSON body that is not an object, or a field the handler refuses.
BODY = (400,)
# A route that names a registered model: unknown name.
MODEL = (400, 404)
# A route that needs a worker: busy queue, lost worker, scheduler unavailable, a worker
# that neither started answering nor went on in time.
WORKER = (400, 404, 429, 502, 503, 504)
# Statuses whose answer may carry Retry-After.
_RETRY = {429, 502, 503}


@dataclass(frozen=True)
class Dialect:
    """An API dialect: its tag in the document and its error envelope's component."""

    tag: str
    error: str


OPENAI = Dialect("OpenAI", "OpenAIError")
OLLAMA = Dialect("Ollama", "OllamaError")
ANTHROPIC = Dialect("Anthropic", "AnthropicError")
ADMIN = Dialect("Admin", "OpenAIError")
LLAMACPP = Dialect("llama.cpp", "OpenAIError")
# The registry and store operations: OpenAI's envelope plus the next step in `error.hint`.
ADMIN_OPS = Dialect("Admin", "AdminError")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: Mapping[str, Schema],
    *required: str,
    extra: bool | Schema = False,
    description: str | None = None,
) -> Schema:
    """An object schema; unknown fields are refused (`extra=False`) unless said otherwise."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = extra
    if description:
        schema["description"] = description
    return schema


def nullable(schema: Schema) -> Schema:
    """`schema` or JSON null (which the handlers read as "not given")."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **more: Any) -> Schema:
    return {"type": "array", "items": items, **more}


STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": "string", "minLength": 1, "pattern": r"\S"}  # not blank
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}
# OpenAPI 3.1 reads a text/event-stream schema as the schema of each event.
SSE_EVENT: Schema = {
    "type": "object",
    "description": "One server-sent event: `data` holds a JSON chunk (or [DONE]).",
    "properties": {"event": STRING, "data": STRING},
    "required": ["data"],
}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def body(schema: Schema, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": json_content(schema)}


def answer(description: str, content: Mapping[str, Schema] | None = None) -> dict[str, Any]:
    """A response; `content` maps media types to schemas (none: an empty body)."""
    out: dict[str, Any] = {"description": description}
    if content:
        out["content"] = {media: {"schema": schema} for media, schema in content.items()}
    return out


def ok_json(description: str, schema: Schema) -> dict[str, Any]:
    return answer(description, {"application/json": schema})


def operation(
    dialect: Dialect,
    summary: str,
    ok: Mapping[int, dict[str, Any]],
    *,
    errors: Iterable[int] = (),
    request: Schema | None = None,
    parameters: list[dict[str, Any]] | None = None,
    description: str | None = None,
    secured: bool = True,
    body_required: bool = True,
) -> Operation:
    """One operation: its 2xx answers (`ok`), the error statuses it can give in the
    dialect's envelope, and a JSON request body if it takes one."""
    op: Operation = {"tags": [dialect.tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request is not None:
        op["requestBody"] = body(request, required=body_required)
    responses = {str(status): response for status, response in ok.items()}
    for status in sorted({*errors, *(ALWAYS if secured else ())}):
        responses.setdefault(str(status), error_answer(dialect, status))
    op["responses"] = responses
    if not secured:
        op["security"] = []
    return op


def worker_operation(
    dialect: Dialect, summary: str, request: str, ok: Mapping[str, Schema], reply: str = "The reply"
) -> Operation:
    """A route a model's worker answers: its body is the `request` component, its 200 is
    `ok` (media type → schema), and it can give every `WORKER` error."""
    return operation(
        dialect, summary, {200: answer(reply, ok)}, errors=WORKER, request=ref(request)
    )


def error_answer(dialect: Dialect, status: int) -> dict[str, Any]:
    response = answer(HTTPStatus(status).phrase, {"application/json": ref(dialect.error)})
    if status in _RETRY:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "string"},
            }
        }
    return response
