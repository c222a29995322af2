"""The Anthropic dialect in the document: `api/anthropic/messages.py` (the Messages API)."""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    ANTHROPIC,
    ANY,
    INTEGER,
    SSE_EVENT,
    STRING,
    TEXT,
    Paths,
    Schema,
    array,
    obj,
    ref,
    worker_operation,
)

_TEXT = obj({"type": {"const": "text"}, "text": STRING}, "type", "text", extra=True)
_STRING_OR_NULL: Schema = {"type": ["string", "null"]}
_THINKING = obj(
    {"type": {"enum": ["thinking", "redacted_thinking"]}, "thinking": _STRING_OR_NULL},
    "type",
    extra=True,
)
_TOOL_USE = obj(
    {
        "type": {"const": "tool_use"},
        "id": STRING,
        "name": STRING,
        "input": {"type": ["object", "null"]},
    },
    "type",
    "id",
    "name",
    extra=True,
)
_TOOL_RESULT = obj(
    {
        "type": {"const": "tool_result"},
        "tool_use_id": STRING,
        "content": {"anyOf": [STRING, array(_TEXT), {"type": "null"}]},
        "is_error": {"type": ["boolean", "null"]},
    },
    "type",
    "tool_use_id",
    extra=True,
)
_USER = obj(
    {
        "role": {"const": "user"},
        "content": {"anyOf": [STRING, array({"anyOf": [_TEXT, _THINKING, _TOOL_RESULT]})]},
    },
    "role",
    "content",
    extra=True,
)
_ASSISTANT = obj(
    {
        "role": {"const": "assistant"},
        "content": {"anyOf": [STRING, array({"anyOf": [_TEXT, _THINKING, _TOOL_USE]})]},
    },
    "role",
    "content",
    extra=True,
)
_COUNT = {
    "model": TEXT,
    "messages": array({"anyOf": [_USER, _ASSISTANT]}, minItems=1),
    "system": {"anyOf": [STRING, array(_TEXT), {"type": "null"}]},
    "tools": {
        "anyOf": [
            array(
                obj(
                    {
                        "name": {"type": "string", "minLength": 1},
                        "type": {"enum": ["custom", None]},
                        "description": {"type": ["string", "null"]},
                        "input_schema": {"type": ["object", "null"]},
                    },
                    "name",
                    extra=True,
                )
            ),
            {"type": "null"},
        ]
    },
    "tool_choice": {
        "anyOf": [obj({"type": {"enum": ["auto", "none"]}}, "type", extra=True), {"type": "null"}]
    },
    "thinking": {
        "anyOf": [
            obj({"type": {"enum": ["enabled", "disabled"]}}, "type", extra=True),
            {"type": "null"},
        ]
    },
}

SCHEMAS: dict[str, Schema] = {
    "AnthropicError": obj(
        {
            "type": {"const": "error"},
            "error": obj(
                {
                    "type": {
                        "enum": [
                            "invalid_request_error",
                            "authentication_error",
                            "permission_error",
                            "not_found_error",
                            "request_too_large",
                            "rate_limit_error",
                            "api_error",
                            "overloaded_error",
                        ]
                    },
                    "message": STRING,
                },
                "type",
                "message",
            ),
        },
        "type",
        "error",
        description="The Anthropic error envelope (api/anthropic/errors.py).",
    ),
    "CountTokensRequest": obj(_COUNT, "model", "messages"),
    "MessagesRequest": obj(
        {
            **_COUNT,
            "max_tokens": {"type": "integer", "minimum": 1},
            "stop_sequences": {
                "anyOf": [array({"type": "string", "minLength": 1}, maxItems=16), {"type": "null"}]
            },
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "top_k": {"type": ["integer", "null"], "minimum": 0},
            "stream": {"type": ["boolean", "null"]},
            "metadata": ANY,
            "service_tier": ANY,
        },
        "model",
        "messages",
        "max_tokens",
    ),
    "Message": obj(
        {
            "id": STRING,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": STRING,
            "content": array(
                {
                    "anyOf": [
                        _TEXT,
                        obj(
                            {
                                "type": {"const": "thinking"},
                                "thinking": STRING,
                                "signature": STRING,
                            },
                            "type",
                            "thinking",
                        ),
                        _TOOL_USE,
                    ]
                }
            ),
            "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use"]},
            "stop_sequence": {"type": ["string", "null"]},
            "usage": obj(
                {"input_tokens": INTEGER, "output_tokens": INTEGER},
                "input_tokens",
                "output_tokens",
            ),
        },
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    ),
    "TokenCount": obj({"input_tokens": INTEGER}, "input_tokens"),
}

PATHS: Paths = {
    "/v1/messages": {
        "post": worker_operation(
            ANTHROPIC,
            "Create a message (JSON, or Anthropic's SSE events with stream: true)",
            "MessagesRequest",
            {"application/json": ref("Message"), "text/event-stream": SSE_EVENT},
        )
    },
    "/v1/messages/count_tokens": {
        "post": worker_operation(
            ANTHROPIC,
            "Count the prompt's tokens through the model's chat template",
            "CountTokensRequest",
            {"application/json": ref("TokenCount")},
        )
    },
}
