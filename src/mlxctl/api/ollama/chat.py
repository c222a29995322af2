"""The Ollama dialect, inference: `/api/chat` and `/api/generate`, translated to the worker.

    POST /api/chat       {model, messages, tools?, format?, options?, think?, stream?, keep_alive?}
    POST /api/generate   {model, prompt, system?, raw?, format?, options?, think?, stream?, ...}

`stream` defaults to true (NDJSON lines, the last one `done: true` with real
nanosecond timings). `options` map to sampling (`num_predict` → max_tokens,
`repeat_penalty` → repetition_penalty; `num_ctx` is accepted and changes nothing:
the model keeps its context, so it never reloads); `format` ("json" or a schema)
→ response_format; `think` → the template's `enable_thinking` and `thinking`
out; tool calls come back as `message.tool_calls` with object arguments. An
empty prompt (or no messages) only loads the model (`keep_alive: 0` unloads it),
as Ollama does. Anything we cannot honour is a 400 that names it. The model
management routes live in `models.py`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.body import bool_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.api.turn import Finish, Reply, Text, ToolArgs, ToolCall, ToolStart, Turn
from mlxctl.jsonnum import as_int
from mlxctl.openai_fields import TEST_FORCE_FIELD
from mlxctl.registry import ModelRecord
from mlxctl.scheduler import KeepAlive

_COMMON = {"model", "format", "options", "stream", "keep_alive", "think", TEST_FORCE_FIELD}
_CHAT_FIELDS = _COMMON | {"messages", "tools"}
_GENERATE_FIELDS = _COMMON | {"prompt", "suffix", "images", "system", "template", "context", "raw"}
_MESSAGE_FIELDS = {"role", "content", "images", "thinking", "tool_calls", "tool_name"}
_ROLES = ("system", "user", "assistant", "tool")
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "num_predict": "max_tokens",
    "repeat_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# Accepted and left alone: the model keeps the context it was loaded with (no reload).
_ACCEPTED_OPTIONS = {"num_ctx"}


@OLLAMA.handler(fields=_CHAT_FIELDS)
async def chat(incoming: Incoming) -> Response:
    body = incoming.body
    record, keep_alive = incoming.resolve(), incoming.keep_alive()
    common, stream, tools = _common(body), _stream(body), _tools(body.get("tools"))
    if body.get("messages") in (None, []):
        return await _load_only(incoming, record, keep_alive, chat=True)
    openai = {"messages": _messages(body["messages"]), **common}
    if tools:
        openai["tools"] = tools
    turn = await incoming.turn(record, "/v1/chat/completions", openai, keep_alive)
    return _respond(turn, record.slug, chat=True, stream=stream)


@OLLAMA.handler(fields=_GENERATE_FIELDS)
async def generate(incoming: Incoming) -> Response:
    body = incoming.body
    record, keep_alive = incoming.resolve(), incoming.keep_alive()
    _refuse_generate_fields(body)
    common, stream, raw = _common(body), _stream(body), bool_field(body, "raw", False)
    prompt, system = _text(body, "prompt"), _text(body, "system")
    if raw and (system or body.get("think") is not None):
        raise _bad("'system' and 'think' need the chat template, which raw: true skips")
    if not prompt:
        return await _load_only(incoming, record, keep_alive, chat=False)
    if raw:
        path, openai = "/v1/completions", {"prompt": prompt, **common}
    else:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        path, openai = "/v1/chat/completions", {"messages": messages, **common}
    turn = await incoming.turn(record, path, openai, keep_alive)
    return _respond(turn, record.slug, chat=False, stream=stream)


def routes() -> list[Route]:
    return [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
    ]


# --- the reply ---------------------------------------------------------------------------


def _respond(turn: Turn, model: str, *, chat: bool, stream: bool) -> Response:
    if stream:
        return OLLAMA.streamed(turn, _lines(turn, model, chat))
    return OLLAMA.collected(turn, lambda reply: _collected(turn, model, chat, reply))


async def _lines(turn: Turn, model: str, chat: bool) -> AsyncGenerator[bytes, None]:
    calls: dict[int, ToolCall] = {}
    async for piece in turn.pieces():
        if isinstance(piece, Text):
            yield _line(_part(model, chat, piece.content, piece.thinking))
        elif isinstance(piece, ToolStart):
            calls[piece.index] = ToolCall(piece.index, piece.id, piece.name)
        elif isinstance(piece, ToolArgs):
            calls[piece.index].arguments += piece.json
        elif isinstance(piece, Finish):
            if calls:  # Ollama sends whole calls, in their own line
                part = _part(model, chat, "", "")
                part["message"]["tool_calls"] = _tool_calls(calls.values())
                yield _line(part)
            yield _line(_final(turn, model, chat, piece))


def _collected(turn: Turn, model: str, chat: bool, reply: Reply) -> dict[str, Any]:
    """The non-streaming reply: the whole generation in one object."""
    body = _final(turn, model, chat, reply.finish)
    field = "message" if chat else "response"
    part = _part(model, chat, reply.content, reply.thinking)
    body[field] = part[field]
    if not chat and "thinking" in part:
        body["thinking"] = part["thinking"]
    if reply.tool_calls:
        body["message"]["tool_calls"] = _tool_calls(reply.tool_calls)
    return body


def _part(model: str, chat: bool, content: str, thinking: str) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": _now()}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        out["message"] = message
    else:
        out["response"] = content
        if thinking:
            out["thinking"] = thinking
    out["done"] = False
    return out


def _final(turn: Turn, model: str, chat: bool, finish: Finish) -> dict[str, Any]:
    out = _part(model, chat, "", "")
    out["done"] = True
    out["done_reason"] = "length" if finish.reason == "length" else "stop"
    durations = turn.timings.durations()
    return {
        **out,
        "total_duration": durations["total_duration"],
        "load_duration": durations["load_duration"],
        "prompt_eval_count": finish.prompt_tokens,
        "prompt_eval_duration": durations["prompt_eval_duration"],
        "eval_count": finish.completion_tokens,
        "eval_duration": durations["eval_duration"],
    }


def _tool_calls(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    out = []
    for call in sorted(calls, key=lambda c: c.index):
        try:
            parsed: Any = json.loads(call.arguments or "{}")
        except ValueError:
            parsed = call.arguments  # not JSON: passed on as the model wrote it
        function = {"index": call.index, "name": call.name, "arguments": parsed}
        out.append({"function": function})
    return out


async def _load_only(
    incoming: Incoming, record: ModelRecord, keep_alive: KeepAlive, *, chat: bool
) -> Response:
    """Ollama's empty request: load the model (or unload it with keep_alive 0)."""
    router = incoming.router
    if keep_alive == 0:
        await router.scheduler.unload(record.slug)
        reason = "unload"
    else:
        await router.scheduler.load(record, keep_alive)
        reason = "load"
    body = _part(record.slug, chat, "", "")
    body.update(done=True, done_reason=reason)
    return JSONResponse(body)


# --- the request -------------------------------------------------------------------------


def _refuse_generate_fields(body: dict[str, Any]) -> None:
    """Fields we cannot honour: absent, null or empty, else a 400 that says why."""
    why = {
        "context": "(the token state of an earlier /api/generate) is not supported; "
        "send the conversation to /api/chat instead",
        "template": "(a Go template) is not supported; send a formatted prompt with "
        "raw: true, or let the model's chat template apply",
        "suffix": "(fill-in-the-middle) is not supported",
        "images": "are not supported: the models mlxctl serves are text-only",
    }
    for name, reason in why.items():
        if not _empty(body.get(name)):
            raise _bad(f"'{name}' {reason}")


def _tools(tools: Any) -> list[Any]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array of function tools")
    return tools


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"'{name}' must be a string")
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _common(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI fields from options, format, think and the test hook."""
    out = _options(body.get("options"))
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        schema = {"name": "format", "schema": fmt, "strict": True}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif fmt not in (None, ""):
        raise _bad("'format' must be \"json\" or a JSON schema object")
    think = body.get("think")
    if isinstance(think, bool):
        out["chat_template_kwargs"] = {"enable_thinking": think}
    elif think is not None:
        raise _bad(f"'think' must be true or false (levels like {think!r} are not supported)")
    if TEST_FORCE_FIELD in body:
        out[TEST_FORCE_FIELD] = body[TEST_FORCE_FIELD]
    return out


def _options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise _bad("'options' must be an object")
    unknown = sorted(set(options) - set(_OPTIONS) - _ACCEPTED_OPTIONS)
    if unknown:
        raise _bad(f"unsupported option(s): {', '.join(unknown)}")
    out = {_OPTIONS[k]: v for k, v in options.items() if k in _OPTIONS and v is not None}
    predict = as_int(out.get("max_tokens"))
    if predict is not None and predict < 0:
        del out["max_tokens"]  # -1 (no limit) and -2 (fill the context): up to the model
    if "num_ctx" in options and not _positive_int(options["num_ctx"]):
        raise _bad("option 'num_ctx' must be a positive integer")
    return out


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise _bad("'messages' must be an array")
    out: list[dict[str, Any]] = []
    call_ids: dict[str, str] = {}  # tool name → id of its latest call, for tool results
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}] must be an object")
        unknown = sorted(set(message) - _MESSAGE_FIELDS)
        if unknown:
            raise _bad(f"messages[{i}] has unsupported field(s) {', '.join(unknown)}")
        if not _empty(message.get("images")):
            raise _bad(f"messages[{i}].images: the models mlxctl serves are text-only")
        role = message.get("role")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(_ROLES)}")
        for name in ("content", "thinking", "tool_name"):
            _text(message, name)
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise _bad(f"messages[{i}].tool_calls must be an array")
        item: dict[str, Any] = {"role": role, "content": message.get("content") or ""}
        if message.get("thinking"):
            item["reasoning_content"] = message["thinking"]
        if calls:
            item["tool_calls"] = [
                _openai_call(call, f"call_{i}_{j}", call_ids) for j, call in enumerate(calls)
            ]
        if role == "tool" and message.get("tool_name"):
            item["name"] = message["tool_name"]
            item["tool_call_id"] = call_ids.get(message["tool_name"], "call_0")
        out.append(item)
    return out


def _openai_call(call: Any, ident: str, call_ids: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _bad('a tool call must be {"function": {"name", "arguments"}}')
    arguments = function.get("arguments") or {}
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    call_ids[function["name"]] = ident
    return {
        "id": ident,
        "type": "function",
        "function": {"name": function["name"], "arguments": text},
    }


def _stream(body: dict[str, Any]) -> bool:
    return bool_field(body, "stream", True)


def _positive_int(value: Any) -> bool:
    number = as_int(value)
    return number is not None and number > 0


def _bad(message: str) -> APIError:
    return APIError(400, message, code="invalid_value")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
