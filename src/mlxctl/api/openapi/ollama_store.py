"""Ollama's store routes in the document: `/api/create`, `/api/push`, `/api/blobs/{digest}`
(`api/ollama/create.py`, `push.py`, `blobs.py`)."""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    OLLAMA,
    STRING,
    TEXT,
    Operation,
    Paths,
    Schema,
    answer,
    array,
    obj,
    operation,
    ref,
)

_NDJSON = {"application/x-ndjson": {"type": "string", "description": "One JSON object a line"}}
_PROGRESS = {"application/json": ref("OllamaPullStatus"), **_NDJSON}
_STREAM: Schema = {"type": ["boolean", "null"], "description": "Default true (NDJSON lines)."}
_DIGEST = {"type": "string", "pattern": r"^sha256[:-][0-9a-f]{64}$"}
_BLOBS = obj(
    {},
    extra=_DIGEST,
    description="File name → digest of a blob sent first with POST /api/blobs/{digest}.",
)
_TEXTS = {"anyOf": [STRING, array(STRING), {"type": "null"}]}

_WHOLE = {"type": ["integer", "null"]}
_STOP = {"type": "string", "minLength": 1}
_REAL = {"type": ["number", "null"]}
_PARAMETERS = obj(
    {
        **{name: _REAL for name in ("temperature", "top_p", "min_p", "repetition_penalty")},
        **{name: _REAL for name in ("presence_penalty", "frequency_penalty", "repeat_penalty")},
        **{name: _WHOLE for name in ("top_k", "max_tokens", "num_predict", "seed", "num_ctx")},
        **{name: _WHOLE for name in ("repetition_context_size", "repeat_last_n")},
        "stop": {"anyOf": [_STOP, array(_STOP), {"type": "null"}]},
    }
)

SCHEMAS: dict[str, Schema] = {
    "OllamaCreateRequest": obj(
        {
            "model": {**TEXT, "description": "The new store name (name[:tag])."},
            "name": {"type": ["string", "null"], "description": "The older name of `model`."},
            "from": {"anyOf": [TEXT, {"type": "null"}], "description": "The base: a model name."},
            "files": {"anyOf": [_BLOBS, {"type": "null"}], "description": "Or: model files."},
            "adapters": {"anyOf": [_BLOBS, {"type": "null"}]},
            "template": {"type": ["string", "null"], "description": "A Jinja chat template."},
            "system": {"type": ["string", "null"]},
            "license": _TEXTS,
            "parameters": {
                "anyOf": [_PARAMETERS, {"type": "null"}],
                "description": "Sampling defaults (ModelSpec's or Ollama's names).",
            },
            "messages": {
                "anyOf": [
                    array(
                        obj(
                            {"role": {"enum": ["system", "user", "assistant"]}, "content": STRING},
                            "role",
                            "content",
                            extra=True,
                        )
                    ),
                    {"type": "null"},
                ]
            },
            "quantize": {
                "anyOf": [{"type": "string", "pattern": "^[qQ]?[234568](_.*)?$"}, {"type": "null"}],
                "description": "e.g. q4_K_M, q8_0.",
            },
            "stream": _STREAM,
        },
        "model",
    )
    | {
        "oneOf": [
            {"required": ["from"], "properties": {"from": TEXT}},
            {
                "required": ["files"],
                "properties": {"files": {"type": "object", "minProperties": 1}},
            },
        ]
    },
    "OllamaPushRequest": obj(
        {
            "model": {
                **TEXT,
                "description": "REGISTRY/NAMESPACE/MODEL[:TAG]: pushes the store model "
                "MODEL[:TAG] there.",
            },
            "name": {"type": ["string", "null"]},
            "insecure": {"type": ["boolean", "null"]},
            "stream": _STREAM,
        },
        "model",
    ),
}


def _upload() -> Operation:
    """The one raw-body route: its body is the file, not JSON (HEAD on the same path,
    answered 200 or 404 without a body, says whether the store holds the blob)."""
    op = operation(
        OLLAMA,
        "Upload a model file for /api/create (checked against its digest)",
        {201: answer("Stored"), 200: answer("Already stored")},
        errors=(400, 413),
        parameters=[{"name": "digest", "in": "path", "required": True, "schema": _DIGEST}],
    )
    raw = {"type": "string", "format": "binary", "description": "The file's bytes."}
    op["requestBody"] = {"required": True, "content": {"application/octet-stream": {"schema": raw}}}
    return op


PATHS: Paths = {
    "/api/create": {
        "post": operation(
            OLLAMA,
            "Create a store model from a base (or uploaded files) and a system prompt, "
            "template, parameters… (NDJSON progress)",
            {200: answer("Progress lines, or (stream: false) the last one", _PROGRESS)},
            errors=(400, 404, 409),
            request=ref("OllamaCreateRequest"),
        )
    },
    "/api/push": {
        "post": operation(
            OLLAMA,
            "Push a store model to an OCI registry (NDJSON progress)",
            {200: answer("Progress lines, or (stream: false) the last one", _PROGRESS)},
            errors=(400, 403, 404, 409),
            request=ref("OllamaPushRequest"),
        )
    },
    "/api/blobs/{digest}": {
        "post": _upload(),
    },
}
