"""The Ollama dialect in the document: `api/ollama/chat.py`, `models.py`, `embed.py`,
`pull.py` (the store routes `/api/create`, `/api/push`, `/api/blobs` are in
`ollama_store.py`).
"""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    ANY,
    BOOLEAN,
    INTEGER,
    MODEL,
    OLLAMA,
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
    worker_operation,
)
from mlxctl.api.openapi.openai import EMBEDDING_INPUT, FUNCTION_TOOL, KEEP_ALIVE

# Served but not described (none now; a route listed here needs its reason).
LEFT_OUT: set[tuple[str, str]] = set()

_NDJSON = {"application/x-ndjson": {"type": "string", "description": "One JSON object a line"}}
_NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
_OPTIONS = obj(
    {
        "temperature": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 2},
        "top_p": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 1},
        "top_k": {"type": ["integer", "null"], "minimum": 0},
        "min_p": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 1},
        "seed": {"type": ["integer", "null"]},
        "stop": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                array({"type": "string", "minLength": 1}, maxItems=16),
                {"type": "null"},
            ]
        },
        "num_predict": {
            "type": ["integer", "null"],
            "description": "Tokens to generate; -1 (or any negative): up to the model.",
            "not": {"const": 0},
        },
        "repeat_penalty": {**_NUMBER_OR_NULL, "exclusiveMinimum": 0, "maximum": 10},
        "presence_penalty": {**_NUMBER_OR_NULL, "minimum": -2, "maximum": 2},
        "frequency_penalty": {**_NUMBER_OR_NULL, "minimum": -2, "maximum": 2},
        "num_ctx": {
            "type": "integer",
            "minimum": 1,
            "description": "Accepted; the model keeps the context it was loaded with.",
        },
    },
    description="Sampling options (Ollama's names).",
)
_FORMAT: Schema = {
    "description": '"json", or a JSON schema the reply must follow.',
    "anyOf": [{"enum": ["json", "", None]}, {"type": "object"}],
}
_COMMON: dict[str, Schema] = {
    "model": TEXT,
    "format": _FORMAT,
    "options": {"anyOf": [_OPTIONS, {"type": "null"}]},
    "stream": {"type": ["boolean", "null"], "description": "Default true (NDJSON lines)."},
    "keep_alive": {"anyOf": [KEEP_ALIVE, {"type": "null"}]},
    "think": {"type": ["boolean", "null"]},
}
_TOOL_CALL = obj(
    {"function": obj({"name": STRING, "arguments": ANY}, "name", extra=True)},
    "function",
    extra=True,
)
_UNSUPPORTED: Schema = {"enum": [None, "", []], "description": "Not supported: leave it out."}
# Base64 images for a vision model (docs/vision.md); a text-only model answers 400.
_IMAGES: Schema = {"anyOf": [array({"type": "string", "minLength": 1}), {"type": "null"}]}
_MESSAGE = obj(
    {
        "role": {"enum": ["system", "user", "assistant", "tool"]},
        "content": {"type": ["string", "null"]},
        "images": _IMAGES,
        "thinking": {"type": ["string", "null"]},
        "tool_calls": {"anyOf": [array(_TOOL_CALL), {"type": "null"}]},
        "tool_name": {"type": ["string", "null"]},
    },
    "role",
)
_STORE_NAME = (
    "A store name: lowercase a-z, 0-9, '.', '_' or '-' (up to 64 characters), then "
    "optionally ':tag'."
)
_MODEL_OR_NAME = {"model": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}}
_NAMED: Schema = {
    "anyOf": [
        {"required": ["model"], "properties": {"model": TEXT}},
        {"required": ["name"], "properties": {"name": TEXT}},
    ]
}
_DETAILS = obj(
    {
        "parent_model": STRING,
        "format": STRING,
        "family": STRING,
        "families": array(STRING),
        "parameter_size": STRING,
        "quantization_level": STRING,
    },
    "format",
    "family",
)
_ENTRY: dict[str, Schema] = {
    "name": STRING,
    "model": STRING,
    "modified_at": STRING,
    "size": INTEGER,
    "details": _DETAILS,
}
_DURATIONS = {
    name: INTEGER
    for name in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    )
}
_TOOL_CALL_OUT = obj(
    {"function": obj({"index": INTEGER, "name": STRING, "arguments": ANY}, "name", "arguments")},
    "function",
)

_ALIAS_OF: Schema = {
    "description": "A routing alias of config.yaml: the models it picks from, in order.",
    "type": "array",
    "items": STRING,
}

SCHEMAS: dict[str, Schema] = {
    "OllamaError": obj(
        {"error": STRING}, "error", description="The Ollama error envelope (api/ollama/errors.py)."
    ),
    "OllamaChatRequest": obj(
        {
            **_COMMON,
            "messages": {"anyOf": [array(_MESSAGE), {"type": "null"}]},
            "tools": {"anyOf": [array(FUNCTION_TOOL), {"type": "null"}]},
        },
        "model",
        description="No (or empty) messages: only load the model (keep_alive 0: unload it).",
    ),
    "OllamaGenerateRequest": obj(
        {
            **_COMMON,
            "prompt": {"type": ["string", "null"]},
            "system": {"type": ["string", "null"]},
            "raw": {"type": ["boolean", "null"]},
            "suffix": _UNSUPPORTED,
            "images": _IMAGES,
            "template": _UNSUPPORTED,
            "context": _UNSUPPORTED,
        },
        "model",
        description="An empty prompt only loads the model (keep_alive 0: unload it).",
    )
    | {
        # raw: true skips the chat template, which `system`, `images` and `think` need.
        "if": {"properties": {"raw": {"const": True}}, "required": ["raw"]},
        "then": {
            "properties": {
                "system": {"enum": ["", None]},
                "images": {"enum": [[], None]},
                "think": {"type": "null"},
            }
        },
    },
    "OllamaChatResponse": obj(
        {
            "model": STRING,
            "created_at": STRING,
            "message": obj(
                {
                    "role": {"const": "assistant"},
                    "content": STRING,
                    "thinking": STRING,
                    "tool_calls": array(_TOOL_CALL_OUT),
                },
                "role",
                "content",
            ),
            "done": BOOLEAN,
            "done_reason": {"enum": ["stop", "length", "load", "unload"]},
            **_DURATIONS,
        },
        "model",
        "created_at",
        "message",
        "done",
    ),
    "OllamaGenerateResponse": obj(
        {
            "model": STRING,
            "created_at": STRING,
            "response": STRING,
            "thinking": STRING,
            "done": BOOLEAN,
            "done_reason": {"enum": ["stop", "length", "load", "unload"]},
            **_DURATIONS,
        },
        "model",
        "created_at",
        "response",
        "done",
    ),
    "OllamaEmbedRequest": {
        **obj(
            {
                "model": TEXT,
                "input": {
                    "anyOf": [EMBEDDING_INPUT, {"enum": ["", [], None]}],
                    "description": "Empty: an empty list, without loading the model.",
                },
                "truncate": {"type": ["boolean", "null"], "description": "Default true."},
                "dimensions": {"type": ["integer", "null"], "minimum": 1},
                "keep_alive": {"anyOf": [KEEP_ALIVE, {"type": "null"}]},
            },
            "model",
            extra=True,
        ),
    },
    "OllamaEmbedResponse": obj(
        {
            "model": STRING,
            "embeddings": array(array({"type": "number"})),
            "total_duration": INTEGER,
            "load_duration": INTEGER,
            "prompt_eval_count": INTEGER,
        },
        "model",
        "embeddings",
    ),
    "OllamaEmbedding": obj({"embedding": array({"type": "number"})}, "embedding"),
    "OllamaEmbeddingsRequest": obj(
        {
            "model": TEXT,
            "prompt": {"type": ["string", "null"]},
            "keep_alive": {"anyOf": [KEEP_ALIVE, {"type": "null"}]},
        },
        "model",
        extra=True,
    ),
    "OllamaShowRequest": {**obj(_MODEL_OR_NAME, extra=True), **_NAMED},
    "OllamaShowResponse": obj(
        {
            "license": STRING,
            "modelfile": STRING,
            "parameters": STRING,
            "template": STRING,
            "details": _DETAILS,
            "model_info": {"type": "object"},
            "capabilities": array(STRING),
            "modified_at": STRING,
        },
        "modelfile",
        "template",
        "details",
        "model_info",
        "capabilities",
    ),
    "OllamaCopyRequest": obj(
        {
            "source": {**TEXT, "description": "A registered model."},
            "destination": {**TEXT, "description": _STORE_NAME},
        },
        "source",
        "destination",
        extra=True,
    ),
    "OllamaDeleteRequest": {**obj(_MODEL_OR_NAME, extra=True), **_NAMED},
    "OllamaPullRequest": {
        **obj(
            {
                **_MODEL_OR_NAME,
                "stream": {"type": ["boolean", "null"], "description": "Default true."},
                "insecure": {
                    "type": ["boolean", "null"],
                    "description": "A plain-http registry: refused (403) unless the daemon "
                    "runs with MLXCTL_ALLOW_INSECURE_PULL.",
                },
                "replace": {
                    "type": ["boolean", "null"],
                    "description": "Take the name of a model pulled from elsewhere (409 "
                    "otherwise).",
                },
            }
        ),
        **_NAMED,
        "description": "An HF repo (`org/repo[@rev]`, `hf://...`) or an OCI reference "
        "(`host/repo:tag`).",
    },
    "OllamaPullStatus": obj(
        {
            "status": STRING,
            "model": STRING,
            "digest": STRING,
            "total": {"type": ["integer", "null"]},
            "completed": INTEGER,
        },
        "status",
    ),
    "OllamaTags": obj({"models": array(obj({**_ENTRY, "alias_of": _ALIAS_OF}, *_ENTRY))}, "models"),
    "OllamaPs": obj(
        {
            "models": array(
                obj(
                    {
                        **_ENTRY,
                        "size": {"type": ["integer", "null"]},
                        "size_vram": {"type": ["integer", "null"]},
                        "expires_at": STRING,
                        "context_length": {"type": ["integer", "null"]},
                    },
                    *_ENTRY,
                    "size_vram",
                    "expires_at",
                )
            )
        },
        "models",
    ),
}

_EMPTY = answer("Done (an empty body)")

PATHS: Paths = {
    "/": {
        "get": operation(
            OLLAMA, "Is it running?", {200: answer("Running", {"text/plain": STRING})}
        ),
        "head": operation(OLLAMA, "Is it running? (no body)", {200: answer("Running")}),
    },
    "/api/version": {
        "get": operation(
            OLLAMA,
            "mlxctl's version",
            {200: ok_json("The version", obj({"version": STRING}, "version"))},
        )
    },
    "/api/tags": {
        "get": operation(
            OLLAMA, "Registered models", {200: ok_json("The models", ref("OllamaTags"))}
        )
    },
    "/api/ps": {
        "get": operation(
            OLLAMA, "Loaded models (on demand)", {200: ok_json("The models", ref("OllamaPs"))}
        )
    },
    "/api/show": {
        "post": operation(
            OLLAMA,
            "A model's details, template and capabilities",
            {200: ok_json("The model", ref("OllamaShowResponse"))},
            errors=MODEL,
            request=ref("OllamaShowRequest"),
        )
    },
    "/api/copy": {
        "post": operation(
            OLLAMA,
            "Copy a model under a new name",
            {200: _EMPTY},
            errors=(*MODEL, 409),
            request=ref("OllamaCopyRequest"),
        )
    },
    "/api/delete": {
        "delete": operation(
            OLLAMA,
            "Unload and delete a model",
            {200: _EMPTY},
            errors=(*MODEL, 409),
            request=ref("OllamaDeleteRequest"),
        )
    },
    "/api/pull": {
        "post": operation(
            OLLAMA,
            "Pull a model (NDJSON progress; the last line is success or an error)",
            {
                200: answer(
                    "Progress lines, or (stream: false) the last one",
                    {"application/json": ref("OllamaPullStatus"), **_NDJSON},
                )
            },
            errors=(400, 403, 404, 409),
            request=ref("OllamaPullRequest"),
        )
    },
    "/api/chat": {
        "post": worker_operation(
            OLLAMA,
            "Chat (NDJSON lines unless stream: false)",
            "OllamaChatRequest",
            {"application/json": ref("OllamaChatResponse"), **_NDJSON},
        )
    },
    "/api/generate": {
        "post": worker_operation(
            OLLAMA,
            "Generate from a prompt (NDJSON lines unless stream: false)",
            "OllamaGenerateRequest",
            {"application/json": ref("OllamaGenerateResponse"), **_NDJSON},
        )
    },
    "/api/embed": {
        "post": worker_operation(
            OLLAMA,
            "Embeddings of one or more inputs",
            "OllamaEmbedRequest",
            {"application/json": ref("OllamaEmbedResponse")},
        )
    },
    "/api/embeddings": {
        "post": worker_operation(
            OLLAMA,
            "Embedding of one prompt (the older API)",
            "OllamaEmbeddingsRequest",
            {"application/json": ref("OllamaEmbedding")},
        )
    },
}
