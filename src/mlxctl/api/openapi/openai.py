"""The OpenAI dialect in the document: `api/openai/routes.py`, checked by
`worker/requests.py`.

The daemon reads `model` and `keep_alive` and passes the rest to the worker, which
refuses every field it does not implement, so the request schemas are closed.
"""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    ANY,
    BOOLEAN,
    INTEGER,
    OPENAI,
    SSE_EVENT,
    STRING,
    TEXT,
    Paths,
    Schema,
    array,
    nullable,
    obj,
    ok_json,
    operation,
    ref,
    worker_operation,
)
from mlxctl.openai_fields import IGNORED
from mlxctl.scheduler.keepalive import PATTERN as KEEP_ALIVE_PATTERN

KEEP_ALIVE: Schema = {
    "description": "How long the model stays loaded after this request: seconds, or a "
    'duration such as "30s", "5m", "1h30m"; negative: forever; 0: unload after it.',
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": KEEP_ALIVE_PATTERN},
    ],
}


def _range(kind: str, lo: float | None, hi: float | None, **more: float) -> Schema:
    schema: Schema = {"type": [kind, "null"]}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return {**schema, **more}


def _completion(kind: str, output: dict[str, Schema], finish: list[str]) -> Schema:
    """A completion body (`worker/completion.py`): one choice holding `output`, and usage."""
    choice = obj(
        {
            "index": INTEGER,
            **output,
            "logprobs": nullable({"type": "object"}),
            "finish_reason": {"enum": finish},
            "stop_reason": STRING,
        },
        "index",
        *output,
        "finish_reason",
    )
    head = {"id": STRING, "object": {"const": kind}, "created": INTEGER, "model": STRING}
    return obj({**head, "choices": array(choice), "usage": ref("Usage")}, *head, "choices", "usage")


_NON_EMPTY: Schema = {"type": "string", "minLength": 1}
_TOKEN_ID: Schema = {"type": "integer", "minimum": 0, "description": "In the model's vocabulary."}
_STOP = nullable({"anyOf": [_NON_EMPTY, array(_NON_EMPTY, maxItems=16)]})
_SAMPLING: dict[str, Schema] = {
    "model": TEXT,
    "keep_alive": KEEP_ALIVE,
    "temperature": _range("number", 0, 2),
    "top_p": _range("number", 0, 1),
    "top_k": _range("integer", 0, None),
    "min_p": _range("number", 0, 1),
    "seed": nullable(INTEGER),
    "repetition_penalty": _range("number", None, 10, exclusiveMinimum=0),
    "frequency_penalty": _range("number", -2, 2),
    "presence_penalty": _range("number", -2, 2),
    "logit_bias": nullable(
        {
            "type": "object",
            "description": "Token id → bias in [-100, 100]; ids must be in the model's vocabulary.",
            "propertyNames": {"pattern": "^[0-9]+$"},
            "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
        }
    ),
    "stop": _STOP,
    "max_tokens": _range("integer", 1, None),
    "stream": nullable(BOOLEAN),
    "stream_options": nullable(
        {
            "type": "object",
            "description": 'Only with "stream": true.',
            "properties": {"include_usage": ANY},
        }
    ),
    "n": _range("integer", 1, 1),
    "response_format": nullable(ref("ResponseFormat")),
    "modalities": {"const": ["text"]},
    # Accepted and ignored, whatever their value (clients send them by habit).
    **{name: ANY for name in sorted(IGNORED - {"model"})},
}

EMBEDDING_INPUT: Schema = {
    "anyOf": [
        _NON_EMPTY,
        array(_TOKEN_ID, minItems=1),
        array({"anyOf": [_NON_EMPTY, array(_TOKEN_ID, minItems=1)]}, minItems=1),
    ]
}
FUNCTION_TOOL = obj(
    {
        "type": {"const": "function"},
        "function": obj(
            {
                "name": _NON_EMPTY,
                "description": {"type": ["string", "null"]},
                "parameters": {"type": ["object", "null"]},
            },
            "name",
            extra=True,
        ),
    },
    "type",
    "function",
    extra=True,
)
_TEXT_PART = obj({"type": {"const": "text"}, "text": STRING}, "type", "text", extra=True)
_CONTENT: Schema = {"anyOf": [STRING, array(_TEXT_PART)]}
_TOOL_CALL = obj(
    {
        "id": STRING,
        "type": {"const": "function"},
        "function": obj({"name": STRING, "arguments": STRING}, "name", "arguments"),
    },
    "id",
    "type",
    "function",
)
# What a client may send back: arguments as JSON text or as the object itself.
_TOOL_CALL_IN = obj(
    {
        "id": nullable(STRING),
        "function": obj(
            {"name": STRING, "arguments": {"type": ["string", "object", "null"]}},
            "name",
            extra=True,
        ),
    },
    "function",
    extra=True,
)
_MESSAGE_TEXT = {name: nullable(STRING) for name in ("name", "tool_call_id", "reasoning_content")}
_MESSAGE: Schema = {
    "anyOf": [
        obj(
            {
                "role": {"enum": ["system", "developer", "user", "tool"]},
                "content": _CONTENT,
                **_MESSAGE_TEXT,
                "tool_calls": nullable(array(_TOOL_CALL_IN)),
            },
            "role",
            "content",
            extra=True,
        ),
        obj(
            {
                "role": {"const": "assistant"},
                "content": nullable(_CONTENT),
                **_MESSAGE_TEXT,
                "tool_calls": nullable(array(_TOOL_CALL_IN)),
            },
            "role",
            extra=True,
        ),
    ]
}

_STREAM_OPTIONS_NEED_STREAM: Schema = {
    "if": {"properties": {"stream_options": {"type": "object"}}, "required": ["stream_options"]},
    "then": {"properties": {"stream": {"const": True}}, "required": ["stream"]},
}
_TOP_LOGPROBS_NEED_LOGPROBS: Schema = {
    "if": {
        "properties": {"top_logprobs": {"type": "integer", "minimum": 1}},
        "required": ["top_logprobs"],
    },
    "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
}

SCHEMAS: dict[str, Schema] = {
    "OpenAIError": obj(
        {
            "error": obj(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": nullable(STRING),
                    "code": nullable(STRING),
                },
                "message",
                "type",
                "param",
                "code",
            )
        },
        "error",
        description="The OpenAI error envelope (api/errors.py).",
    ),
    "ResponseFormat": {
        "oneOf": [
            obj({"type": {"enum": ["text", "json_object"]}}, "type", extra=True),
            obj(
                {
                    "type": {"const": "json_schema"},
                    "json_schema": obj(
                        {"name": ANY, "schema": {"type": "object"}, "strict": ANY},
                        "schema",
                        extra=True,
                    ),
                },
                "type",
                "json_schema",
                extra=True,
            ),
        ]
    },
    "ChatCompletionRequest": obj(
        {
            **_SAMPLING,
            "messages": array(_MESSAGE, minItems=1),
            "tools": nullable(array(FUNCTION_TOOL)),
            "tool_choice": {"enum": ["auto", "none", None]},
            "logprobs": nullable(BOOLEAN),
            "top_logprobs": {
                **_range("integer", 0, 20),
                "description": 'Needs "logprobs": true.',
            },
            "max_completion_tokens": _range("integer", 1, None),
            "chat_template_kwargs": nullable({"type": "object"}),
        },
        "model",
        "messages",
    )
    | {"allOf": [_STREAM_OPTIONS_NEED_STREAM, _TOP_LOGPROBS_NEED_LOGPROBS]},
    "CompletionRequest": obj(
        {
            **_SAMPLING,
            "prompt": {
                "anyOf": [
                    _NON_EMPTY,
                    array(_TOKEN_ID, minItems=1),
                    array(_NON_EMPTY, minItems=1, maxItems=1),
                    array(array(_TOKEN_ID, minItems=1), minItems=1, maxItems=1),
                ],
                "description": "Text or token ids (one prompt: a batch of one is accepted).",
            },
            "logprobs": _range("integer", 0, 5),
            "echo": {"enum": [False, None]},
            "best_of": _range("integer", 1, 1),
            "suffix": {"enum": ["", None]},
        },
        "model",
        "prompt",
    )
    | {"allOf": [_STREAM_OPTIONS_NEED_STREAM]},
    "EmbeddingRequest": obj(
        {
            "model": TEXT,
            "keep_alive": KEEP_ALIVE,
            "input": EMBEDDING_INPUT,
            "encoding_format": {"enum": ["float", "base64", None]},
            "dimensions": _range("integer", 1, None),
            "user": ANY,
            "truncate": BOOLEAN,
        },
        "model",
        "input",
    ),
    "Usage": obj(
        {
            "prompt_tokens": INTEGER,
            "completion_tokens": INTEGER,
            "total_tokens": INTEGER,
            "prompt_tokens_details": obj({"cached_tokens": INTEGER}),
        },
        "prompt_tokens",
        "total_tokens",
    ),
    "ChatCompletion": _completion(
        "chat.completion",
        {
            "message": obj(
                {
                    "role": {"const": "assistant"},
                    "content": nullable(STRING),
                    "reasoning_content": STRING,
                    "tool_calls": array(_TOOL_CALL),
                },
                "role",
                "content",
            )
        },
        ["stop", "length", "tool_calls"],
    ),
    "Completion": _completion("text_completion", {"text": STRING}, ["stop", "length"]),
    "EmbeddingList": obj(
        {
            "object": {"const": "list"},
            "data": array(
                obj(
                    {
                        "object": {"const": "embedding"},
                        "index": INTEGER,
                        "embedding": {"anyOf": [array({"type": "number"}), STRING]},
                    },
                    "object",
                    "index",
                    "embedding",
                )
            ),
            "model": STRING,
            "usage": obj({"prompt_tokens": INTEGER, "total_tokens": INTEGER}),
        },
        "object",
        "data",
        "model",
        "usage",
    ),
    "Model": obj(
        {
            "id": STRING,
            "object": {"const": "model"},
            "created": INTEGER,
            "owned_by": STRING,
            "repo_id": nullable(STRING),
            "context_length": nullable(INTEGER),
            "capabilities": array(STRING),
        },
        "id",
        "object",
        "created",
        "owned_by",
    ),
    "ModelList": obj({"object": {"const": "list"}, "data": array(ref("Model"))}, "object", "data"),
}

_SSE = {"text/event-stream": SSE_EVENT}

PATHS: Paths = {
    "/v1/chat/completions": {
        "post": worker_operation(
            OPENAI,
            "Chat completion (JSON, or SSE with stream: true)",
            "ChatCompletionRequest",
            {"application/json": ref("ChatCompletion"), **_SSE},
        )
    },
    "/v1/completions": {
        "post": worker_operation(
            OPENAI,
            "Text completion (JSON, or SSE with stream: true)",
            "CompletionRequest",
            {"application/json": ref("Completion"), **_SSE},
        )
    },
    "/v1/embeddings": {
        "post": worker_operation(
            OPENAI, "Embeddings", "EmbeddingRequest", {"application/json": ref("EmbeddingList")}
        )
    },
    "/v1/models": {
        "get": operation(
            OPENAI, "Registered models", {200: ok_json("The models", ref("ModelList"))}
        )
    },
    "/v1/models/{model}": {
        "get": operation(
            OPENAI,
            "One registered model",
            {200: ok_json("The model", ref("Model"))},
            errors=(400, 404),
            parameters=[
                {"name": "model", "in": "path", "required": True, "schema": STRING},
            ],
        )
    },
}
