"""The Responses API in the document: `api/openai/responses*.py`.

The request schema says what `responses_request.py` and `responses_items.py` accept:
unknown top-level fields are refused, items and parts may carry fields of their own.
"""

from __future__ import annotations

from mlxctl.api.openai.responses_request import IGNORED
from mlxctl.api.openapi.build import (
    ANY,
    BOOLEAN,
    INTEGER,
    MODEL,
    OPENAI,
    SSE_EVENT,
    STRING,
    TEXT,
    Operation,
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
from mlxctl.api.openapi.openai import KEEP_ALIVE

_PART = obj(
    {
        "type": {
            "enum": [
                "input_text",
                "output_text",
                "refusal",
                "text",
                "summary_text",
                "reasoning_text",
            ]
        },
        "text": STRING,
    },
    "type",
    "text",
    extra=True,
)
_PARTS = array(_PART)
_MESSAGE = obj(
    {
        "type": {"const": "message"},
        "role": {"enum": ["user", "system", "developer", "assistant"]},
        "content": {"anyOf": [STRING, _PARTS]},
    },
    "role",
    "content",
    extra=True,
)
_FUNCTION_CALL = obj(
    {"type": {"const": "function_call"}, "call_id": STRING, "name": STRING, "arguments": STRING},
    "type",
    "call_id",
    "name",
    "arguments",
    extra=True,
)
_FUNCTION_OUTPUT = obj(
    {
        "type": {"const": "function_call_output"},
        "call_id": STRING,
        "output": {"anyOf": [STRING, _PARTS]},
    },
    "type",
    "call_id",
    "output",
    extra=True,
)
_REASONING = obj(
    {"type": {"const": "reasoning"}, "summary": nullable(_PARTS), "content": nullable(_PARTS)},
    "type",
    extra=True,
)
_FUNCTION_TOOL = obj(
    {
        "type": {"const": "function"},
        "name": {"type": "string", "minLength": 1},
        "parameters": {"type": ["object", "null"]},
        "description": ANY,
    },
    "type",
    "name",
    extra=True,
)
# Any other tool (web_search, file_search, …) is left out: the daemon runs no hosted tools.
_OTHER_TOOL = obj(
    {"type": {"type": "string", "not": {"enum": ["function", "namespace"]}}}, "type", extra=True
)
# What a namespace holds besides functions is skipped, as long as it is not a bad function.
_NOT_A_FUNCTION: Schema = {
    "not": {"type": "object", "properties": {"type": {"const": "function"}}, "required": ["type"]}
}
_NAMESPACE = obj(
    {
        "type": {"const": "namespace"},
        "name": STRING,
        "tools": array({"anyOf": [_FUNCTION_TOOL, _NOT_A_FUNCTION]}),
    },
    "type",
    "name",
    "tools",
    extra=True,
)
_FORMAT = {
    "anyOf": [
        obj({"type": {"enum": ["text", "json_object"]}}, "type", extra=True),
        obj(
            {"type": {"const": "json_schema"}, "name": STRING, "schema": {"type": "object"}},
            "type",
            "name",
            "schema",
            extra=True,
        ),
    ]
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}

SCHEMAS: dict[str, Schema] = {
    "ResponseRequest": obj(
        {
            "model": TEXT,
            "input": {
                "anyOf": [
                    STRING,
                    array(
                        {"anyOf": [_MESSAGE, _FUNCTION_CALL, _FUNCTION_OUTPUT, _REASONING]},
                        minItems=1,
                        # reasoning alone is no turn to answer
                        contains={"anyOf": [_MESSAGE, _FUNCTION_CALL, _FUNCTION_OUTPUT]},
                    ),
                ]
            },
            "instructions": {"type": ["string", "null"]},
            "previous_response_id": nullable({"type": "string", "minLength": 1}),
            "tools": nullable(array({"anyOf": [_FUNCTION_TOOL, _NAMESPACE, _OTHER_TOOL]})),
            "tool_choice": {"enum": ["auto", "none", None]},
            "text": nullable(obj({"format": nullable(_FORMAT)}, extra=True)),
            "reasoning": nullable(
                obj(
                    {
                        "effort": {
                            "enum": ["none", "minimal", "low", "medium", "high", "xhigh", None]
                        },
                        "summary": {"enum": ["auto", "concise", "detailed", None]},
                        "generate_summary": {"enum": ["auto", "concise", "detailed", None]},
                    },
                    extra=True,
                )
            ),
            "max_output_tokens": nullable({"type": "integer", "minimum": 1}),
            "temperature": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 2},
            "top_p": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 1},
            "stream": {"type": ["boolean", "null"]},
            "store": {"type": ["boolean", "null"]},
            "parallel_tool_calls": {"type": ["boolean", "null"]},
            "background": {"enum": [False, None]},
            "top_logprobs": {"enum": [0, None]},
            "truncation": {"enum": ["disabled", "auto", None]},
            "metadata": {"type": ["object", "null"]},
            "keep_alive": nullable(KEEP_ALIVE),
            **{name: ANY for name in sorted(IGNORED)},
        },
        "model",
        "input",
    ),
    "Response": obj(
        {
            "id": STRING,
            "object": {"const": "response"},
            "created_at": INTEGER,
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
            "model": STRING,
            "output": array({"type": "object"}),
            "error": nullable({"type": "object"}),
            "incomplete_details": nullable({"type": "object"}),
            "usage": nullable(
                obj(
                    {
                        "input_tokens": INTEGER,
                        "input_tokens_details": obj({"cached_tokens": INTEGER}, "cached_tokens"),
                        "output_tokens": INTEGER,
                        "output_tokens_details": obj(
                            {"reasoning_tokens": INTEGER}, "reasoning_tokens"
                        ),
                        "total_tokens": INTEGER,
                    },
                    "input_tokens",
                    "output_tokens",
                    "total_tokens",
                )
            ),
            "previous_response_id": {"type": ["string", "null"]},
            "store": BOOLEAN,
        },
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        extra=True,
        description="A response object, as OpenAI's (api/openai/responses_output.py).",
    ),
    "ResponseDeleted": obj(
        {"id": STRING, "object": {"const": "response.deleted"}, "deleted": {"const": True}},
        "id",
        "object",
        "deleted",
    ),
    "ResponseItemList": obj(
        {
            "object": {"const": "list"},
            "data": array({"type": "object"}),
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": BOOLEAN,
        },
        "object",
        "data",
        "first_id",
        "last_id",
        "has_more",
    ),
}


def _stored(summary: str, answer: str, *query: Schema) -> Operation:
    """An operation on a stored response: 404 once it is gone or expired."""
    response_id = {"name": "response_id", "in": "path", "required": True, "schema": STRING}
    return operation(
        OPENAI,
        summary,
        {200: ok_json("The answer", ref(answer))},
        errors=MODEL,
        parameters=[response_id, *query],
    )


PATHS: Paths = {
    "/v1/responses": {
        "post": worker_operation(
            OPENAI,
            "Create a response (JSON, or the typed SSE events with stream: true)",
            "ResponseRequest",
            {"application/json": ref("Response"), "text/event-stream": SSE_EVENT},
        )
    },
    "/v1/responses/{response_id}": {
        "get": _stored("A stored response", "Response"),
        "delete": _stored("Forget a stored response", "ResponseDeleted"),
    },
    "/v1/responses/{response_id}/input_items": {
        "get": _stored(
            "A stored response's input items",
            "ResponseItemList",
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
            {"name": "after", "in": "query", "schema": STRING},
        )
    },
}
