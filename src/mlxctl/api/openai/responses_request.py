"""A `POST /v1/responses` body, checked and turned into the worker's chat request.

    input, instructions          → messages (instructions first, as a system message;
                                   never carried over from the previous response)
    previous_response_id         → the stored conversation, then this input
    tools (function)             → chat tools; `namespace` tools are flattened into their
                                   functions; hosted tools (web_search, file_search, …)
                                   are left out: the daemon runs no tools of its own
    tool_choice                  → auto | none (others cannot be enforced: a 400)
    text.format                  → response_format (json_schema enforced while decoding)
    reasoning.effort             → the template's enable_thinking / reasoning_effort
    max_output_tokens, temperature, top_p → the same chat fields

Fields that only steer OpenAI's platform (`include`, `prompt_cache_key`,
`client_metadata`, `service_tier`, …) are accepted and ignored; anything unknown
is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlxctl.api.body import bool_field, model_field
from mlxctl.api.openai.responses_items import Item, bad, input_items, to_messages
from mlxctl.api.openai.responses_store import ResponseStore
from mlxctl.jsonnum import as_int
from mlxctl.openai_fields import TEST_FORCE_FIELD

# Read and honoured.
_USED = {
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "store",
    "metadata",
    "parallel_tool_calls",
    "truncation",
    "keep_alive",
    "background",
    "top_logprobs",
    TEST_FORCE_FIELD,
}
# Accepted and ignored: they steer OpenAI's platform, not the generation.
IGNORED = {
    "include",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "client_metadata",
    "stream_options",
    "max_tool_calls",
}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_SUMMARIES = ("auto", "concise", "detailed")


@dataclass
class Plan:
    """What the route needs from one request: the chat body and what the reply echoes."""

    model: str
    chat: dict[str, Any]
    input: list[Item]
    history: list[Item]  # the stored conversation this one continues (may be empty)
    echo: dict[str, Any]  # request fields the response object repeats
    stream: bool = False
    store: bool = True
    summary: bool = False  # the client asked for a reasoning summary
    namespaces: dict[str, str] = field(default_factory=dict)  # function → its namespace


def plan(body: dict[str, Any], store: ResponseStore) -> Plan:
    unknown = sorted(set(body) - _USED - IGNORED)
    if unknown:
        raise bad(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
    if bool_field(body, "background", False):
        raise bad("'background' responses are not supported: use stream instead", "background")
    logprobs = body.get("top_logprobs")
    if logprobs is not None and (type(logprobs) not in (int, float) or logprobs != 0):
        raise bad("'top_logprobs' is not supported on /v1/responses", "top_logprobs")
    model = model_field(body)
    items = input_items(body.get("input"))
    previous = body.get("previous_response_id")
    history: list[Item] = []
    if previous is not None:
        if not isinstance(previous, str) or not previous:
            raise bad("'previous_response_id' must be a response id", "previous_response_id")
        history = store.get(previous, "previous_response_id").history
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad("'instructions' must be a string", "instructions")
    tools, namespaces = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise bad(
            f"'tool_choice' {choice!r} cannot be enforced here; use 'auto' or 'none'",
            "tool_choice",
        )
    text = _text(body.get("text"))
    reasoning = _reasoning(body.get("reasoning"))
    system = [{"role": "system", "content": instructions}] if instructions else []
    chat: dict[str, Any] = {"messages": [*system, *to_messages([*history, *items])]}
    if tools and choice != "none":
        chat["tools"] = tools
    chat.update(_format(text["format"]))
    if reasoning["effort"] is not None:
        effort = reasoning["effort"]
        chat["chat_template_kwargs"] = {
            "enable_thinking": effort != "none",
            "reasoning_effort": effort,
        }
    max_tokens = as_int(body.get("max_output_tokens"))
    if body.get("max_output_tokens") is not None:
        if max_tokens is None or max_tokens < 1:
            raise bad("'max_output_tokens' must be a positive integer", "max_output_tokens")
        chat["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if TEST_FORCE_FIELD in body:
        chat[TEST_FORCE_FIELD] = body[TEST_FORCE_FIELD]
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad("'metadata' must be an object of strings", "metadata")
    truncation = body.get("truncation")
    truncation = "disabled" if truncation is None else truncation
    if truncation not in ("disabled", "auto"):
        raise bad("'truncation' must be 'disabled' or 'auto'", "truncation")
    echo = {
        "instructions": instructions,
        "tools": body.get("tools") or [],
        "tool_choice": choice or "auto",
        "text": text,
        "reasoning": reasoning,
        "max_output_tokens": max_tokens,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": metadata or {},
        "parallel_tool_calls": bool_field(body, "parallel_tool_calls", True),
        "previous_response_id": previous,
        "store": bool_field(body, "store", True),
        "truncation": truncation,
    }
    return Plan(
        model=model,
        chat=chat,
        input=items,
        history=history,
        echo=echo,
        stream=bool_field(body, "stream", False),
        store=bool(echo["store"]),
        summary=reasoning["summary"] is not None,
        namespaces=namespaces,
    )


def _tools(value: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Function tools as chat tools, namespaces flattened; hosted tools left out."""
    if value is None:
        return [], {}
    if not isinstance(value, list):
        raise bad("'tools' must be an array of tools", "tools")
    tools: list[dict[str, Any]] = []
    namespaces: dict[str, str] = {}
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad(f"'{where}' must be a tool object with a type", where)
        if tool["type"] == "function":
            tools.append(_function(tool, where))
        elif tool["type"] == "namespace":
            inner = tool.get("tools")
            if not isinstance(inner, list) or not isinstance(tool.get("name"), str):
                raise bad(f"'{where}' must have a name and a list of tools", where)
            for j, function in enumerate(inner):
                if isinstance(function, dict) and function.get("type") == "function":
                    tools.append(_function(function, f"{where}.tools[{j}]"))
                    namespaces[function["name"]] = tool["name"]
    return tools, namespaces


def _function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"'{where}.name' must be a non-empty string", f"{where}.name")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise bad(f"'{where}.parameters' must be a JSON Schema object", f"{where}.parameters")
    function: dict[str, Any] = {
        "name": name,
        "parameters": parameters or {"type": "object", "properties": {}},
    }
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _text(value: Any) -> dict[str, Any]:
    if value is None:
        return {"format": {"type": "text"}}
    if not isinstance(value, dict):
        raise bad("'text' must be an object", "text")
    fmt = value.get("format")
    fmt = {"type": "text"} if fmt is None else fmt
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad("'text.format.type' must be text, json_object or json_schema", "text.format")
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise bad("'text.format.schema' must be a JSON Schema object", "text.format.schema")
        if not isinstance(fmt.get("name"), str):
            raise bad("'text.format.name' must be a string", "text.format.name")
    out = {"format": fmt}
    if value.get("verbosity") is not None:
        out["verbosity"] = value["verbosity"]
    return out


def _format(fmt: dict[str, Any]) -> dict[str, Any]:
    """text.format as the chat request's response_format (the worker enforces it)."""
    if fmt["type"] == "json_object":
        return {"response_format": {"type": "json_object"}}
    if fmt["type"] == "json_schema":
        # The worker enforces the schema whatever `strict` says (strict is what it does).
        schema = {"name": fmt["name"], "schema": fmt["schema"]}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    return {}


def _reasoning(value: Any) -> dict[str, Any]:
    if value is None:
        return {"effort": None, "summary": None}
    if not isinstance(value, dict):
        raise bad("'reasoning' must be an object", "reasoning")
    effort = value.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise bad(f"'reasoning.effort' must be one of {', '.join(_EFFORTS)}", "reasoning.effort")
    summary = value.get("summary", value.get("generate_summary"))
    if summary is not None and summary not in _SUMMARIES:
        raise bad(
            f"'reasoning.summary' must be one of {', '.join(_SUMMARIES)}", "reasoning.summary"
        )
    return {"effort": effort, "summary": summary}
