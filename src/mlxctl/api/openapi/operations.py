"""The registry and store operations' admin routes (`api/admin/operations.py`) in the document.

Written from `mlxctl.operations.OPERATIONS` itself: each route's request body is its
arguments model's own JSON Schema (pydantic), so the document cannot drift from what
the route accepts. Streaming operations answer NDJSON progress lines, then the result.
"""

from __future__ import annotations

from typing import Any

from mlxctl.api.openapi.build import (
    ADMIN_OPS,
    ANY,
    BODY,
    INTEGER,
    STRING,
    Paths,
    Schema,
    answer,
    obj,
    ok_json,
    operation,
    ref,
)
from mlxctl.operations import OPERATIONS, Operation

# What an operation can answer besides success: bad arguments, an unknown model, a name
# taken (409), something only a local user or a setting allows (403).
_ERRORS = (*BODY, 403, 404, 409)

SCHEMAS: dict[str, Schema] = {
    "AdminError": obj(
        {
            "error": obj(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                    "hint": {"type": "string", "description": "The next step to take."},
                },
                "message",
                "type",
                "param",
                "code",
            )
        },
        "error",
    ),
    "OperationResult": {
        "type": "object",
        "description": "The operation's result: the same data `mlxctl … --json` prints.",
    },
    "ProgressLine": {
        "description": "One NDJSON line of a streaming operation: a progress event, then "
        "the result, or an error once the stream has started.",
        "anyOf": [
            obj(
                {
                    "progress": {"enum": ["start", "advance", "finish"]},
                    "key": STRING,
                    "label": STRING,
                    "total": {"type": ["integer", "null"]},
                    "done": INTEGER,
                    "note": STRING,
                },
                "progress",
                "key",
                extra=True,
            ),
            obj({"result": ref("OperationResult")}, "result"),
            obj({"error": ANY, "status": INTEGER}, "error", "status"),
        ],
    },
}


def _path(op: Operation[Any]) -> dict[str, Any]:
    if op.streams:
        ok = answer(
            "Progress lines, then the result (NDJSON).",
            {"application/x-ndjson": ref("ProgressLine")},
        )
    else:
        ok = ok_json("The result.", ref("OperationResult"))
    request: Schema | None = None
    if op.method != "GET":
        request = op.args.model_json_schema()
    # Arguments that all have defaults may be left out, body and all (`prune`).
    optional = not request or not request.get("required")
    return {
        op.method.lower(): operation(
            ADMIN_OPS,
            op.summary,
            {200: ok},
            errors=_ERRORS,
            request=request,
            body_required=not optional,
        )
    }


PATHS: Paths = {op.path: _path(op) for op in OPERATIONS}
