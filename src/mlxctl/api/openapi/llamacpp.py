"""llama.cpp's router routes in the document: `/models`, `/models/load`, `/models/unload`,
`/models/sse` (`api/llamacpp/models.py`)."""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    BOOLEAN,
    INTEGER,
    LLAMACPP,
    MODEL,
    STRING,
    TEXT,
    Paths,
    Schema,
    answer,
    array,
    obj,
    ok_json,
    operation,
    ref,
)

_VALUE = {"enum": ["unloaded", "loading", "loaded"]}
_SUCCESS = ok_json("Started", obj({"success": BOOLEAN}, "success"))

SCHEMAS: dict[str, Schema] = {
    "LlamaCppModelRequest": obj({"model": TEXT}, "model", extra=True),
    "LlamaCppModels": obj(
        {
            "object": {"const": "list"},
            "data": array(
                obj(
                    {
                        "id": STRING,
                        "object": {"const": "model"},
                        "owned_by": STRING,
                        "created": INTEGER,
                        "aliases": array(STRING),
                        "tags": array(STRING),
                        "status": obj(
                            {
                                "value": _VALUE,
                                "args": array(STRING),
                                "failed": BOOLEAN,
                                "exit_code": INTEGER,
                                "reason": {"type": ["string", "null"]},
                            },
                            "value",
                        ),
                        "architecture": {"type": "object"},
                    },
                    "id",
                    "status",
                    extra=True,
                )
            ),
        },
        "object",
        "data",
    ),
}

PATHS: Paths = {
    "/models": {
        "get": operation(
            LLAMACPP,
            "Every model with its load status",
            {200: ok_json("The models", ref("LlamaCppModels"))},
        )
    },
    "/models/load": {
        "post": operation(
            LLAMACPP,
            "Start loading a model (its status turns loading, then loaded)",
            {200: _SUCCESS},
            errors=(*MODEL, 429, 503),
            request=ref("LlamaCppModelRequest"),
        )
    },
    "/models/unload": {
        "post": operation(
            LLAMACPP,
            "Unload a model",
            {200: _SUCCESS},
            errors=(*MODEL, 409),
            request=ref("LlamaCppModelRequest"),
        )
    },
    "/models/sse": {
        "get": operation(
            LLAMACPP,
            "Status changes as Server-Sent Events",
            {
                200: answer(
                    'data: {"model", "event": "status_change", "data": {"status"}} per change',
                    {"text/event-stream": STRING},
                )
            },
        )
    },
}
