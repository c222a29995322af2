"""The Anthropic dialect: the Messages API, translated to the worker's chat completions.

    POST /v1/messages                 JSON, or SSE with Anthropic's event sequence
    POST /v1/messages/count_tokens    {"input_tokens": n}

`system` (string or text blocks), multi-turn `messages` with text, `tool_use`
and `tool_result` blocks, `max_tokens` (required), `stop_sequences`,
`temperature`, `top_p`, `top_k`, `tools` (`input_schema` → parameters),
`thinking` (`enabled`/`adaptive` → the template's `enable_thinking`, reasoning back
as thinking blocks), system messages inside `messages`; `context_management`,
`output_config` and `cache_control` are accepted and ignored (docs/clients.md).
Model names nobody registered go through the pattern aliases (MLXCTL_MODEL_MAP,
config.yaml: `claude-*` → a local model). count_tokens asks the worker for one token and reads
`usage.prompt_tokens`: the exact count through the model's own chat template.
Errors use Anthropic's envelope (`errors.py`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.anthropic.errors import ANTHROPIC
from mlxctl.api.body import bool_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.turn import (
    Finish,
    Reply,
    Text,
    ToolArgs,
    ToolCall,
    ToolStart,
    Turn,
    content_parts,
    image_part,
)
from mlxctl.jsonnum import as_int
from mlxctl.openai_fields import TEST_FORCE_FIELD
from mlxctl.scheduler import DEFAULT

# Accepted and knowingly ignored (docs/clients.md): Claude Code sends them on every request.
# context_management edits the server's copy of the context (there is none: the client sends
# it whole each turn), output_config.effort steers Anthropic's models, cache_control (on any
# block) asks for caching the worker's prompt cache does on its own.
_IGNORED = {"context_management", "output_config", "metadata", "service_tier"}
_COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", *_IGNORED}
_FIELDS = _COUNT_FIELDS | {
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    TEST_FORCE_FIELD,
}
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}


def routes() -> list[Route]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]


@ANTHROPIC.handler(fields=_FIELDS)
async def messages(incoming: Incoming) -> Response:
    body = incoming.body
    max_tokens = as_int(body.get("max_tokens"))
    if max_tokens is None or max_tokens < 1:
        raise _bad("max_tokens: Field required (a positive integer)")
    record = incoming.resolve()
    openai = {**_chat(body), "max_tokens": max_tokens, **_sampling(body)}
    stream = bool_field(body, "stream", False)
    turn = await incoming.turn(record, "/v1/chat/completions", openai, DEFAULT)
    if stream:
        return ANTHROPIC.streamed(turn, _events(turn, record.slug))
    return ANTHROPIC.collected(turn, lambda reply: _collected(record.slug, reply))


@ANTHROPIC.handler(fields=_COUNT_FIELDS)
async def count_tokens(incoming: Incoming) -> Response:
    record = incoming.resolve()
    openai = {**_chat(incoming.body), "max_tokens": 1}
    turn = await incoming.turn(record, "/v1/chat/completions", openai, DEFAULT)
    reply = await turn.collect()
    return JSONResponse({"input_tokens": reply.finish.prompt_tokens})


# --- the reply ---------------------------------------------------------------------------


def _stop(finish: Finish) -> dict[str, Any]:
    """`stop_reason` and `stop_sequence` of the reply."""
    if finish.stop_sequence is not None:
        return {"stop_reason": "stop_sequence", "stop_sequence": finish.stop_sequence}
    return {"stop_reason": _STOP_REASONS.get(finish.reason, "end_turn"), "stop_sequence": None}


def _message_head(model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def _collected(model: str, reply: Reply) -> dict[str, Any]:
    """The non-streaming reply: blocks in the order they began."""
    body = _message_head(model)
    body["content"] = [_block(part) for part in reply.parts]
    body.update(_stop(reply.finish))
    body["usage"] = _usage(reply.finish)
    return body


def _block(part: Text | ToolCall) -> dict[str, Any]:
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": _input(part.arguments),
        }
    if part.thinking:
        return {"type": "thinking", "thinking": part.thinking, "signature": ""}
    return {"type": "text", "text": part.content}


async def _events(turn: Turn, model: str) -> AsyncGenerator[bytes, None]:
    """message_start, per block start/delta…/stop, message_delta, message_stop."""
    open_block: str | None = None  # "text", "thinking" or "tool:<index>"
    index = -1
    yield _event("message_start", {"message": _message_head(model)})
    async for piece in turn.pieces():
        if isinstance(piece, Finish):
            if open_block is not None:
                yield _event("content_block_stop", {"index": index})
            yield _event("message_delta", {"delta": _stop(piece), "usage": _usage(piece)})
            yield _event("message_stop", {})
            return
        if isinstance(piece, ToolArgs):
            partial = {"type": "input_json_delta", "partial_json": piece.json}
            yield _event("content_block_delta", {"index": index, "delta": partial})
            continue
        kind = (
            f"tool:{piece.index}"
            if isinstance(piece, ToolStart)
            else ("thinking" if piece.thinking else "text")
        )
        if kind != open_block:
            if open_block is not None:
                yield _event("content_block_stop", {"index": index})
            index, open_block = index + 1, kind
            yield _event("content_block_start", {"index": index, "content_block": _start(piece)})
        if isinstance(piece, Text):
            delta = (
                {"type": "thinking_delta", "thinking": piece.thinking}
                if piece.thinking
                else {"type": "text_delta", "text": piece.content}
            )
            yield _event("content_block_delta", {"index": index, "delta": delta})


def _start(piece: Text | ToolStart) -> dict[str, Any]:
    if isinstance(piece, ToolStart):
        return {"type": "tool_use", "id": piece.id, "name": piece.name, "input": {}}
    if piece.thinking:
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "text", "text": ""}


def _event(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps({"type": name, **data}, ensure_ascii=False)
    return f"event: {name}\ndata: {payload}\n\n".encode()


def _usage(finish: Finish) -> dict[str, int]:
    """Anthropic counts cache reads apart: input_tokens are the ones computed afresh."""
    return {
        "input_tokens": finish.prompt_tokens - finish.cached_tokens,
        "cache_read_input_tokens": finish.cached_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": finish.completion_tokens,
    }


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {"_unparsed": arguments}  # the model wrote invalid JSON; keep it visible


# --- the request -------------------------------------------------------------------------


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    """messages, system, tools, tool_choice and thinking as OpenAI chat fields."""
    out: dict[str, Any] = {"messages": [*_system(body.get("system")), *_messages(body)]}
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _bad("tools: must be an array of tools")
    if tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "none"):
            raise _bad(f"tool_choice {kind!r} cannot be enforced here; use 'auto' or 'none'")
        if kind == "none":
            out.pop("tools", None)
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "adaptive", "disabled"):
            raise _bad("thinking.type must be 'enabled', 'adaptive' or 'disabled'")
        # budget_tokens is not enforced: the reasoning counts against max_tokens.
        out["chat_template_kwargs"] = {"enable_thinking": kind != "disabled"}
    if TEST_FORCE_FIELD in body:
        out[TEST_FORCE_FIELD] = body[TEST_FORCE_FIELD]
    return out


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: body[k] for k in ("temperature", "top_p", "top_k") if body.get(k) is not None}
    stops = body.get("stop_sequences")
    if stops is not None and not isinstance(stops, list):
        raise _bad("stop_sequences: must be an array of strings")
    if stops:
        out["stop"] = stops
    return out


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        return [{"role": "system", "content": "".join(_texts(system, "system"))}]
    raise _bad("system: must be a string or an array of text blocks")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: Field required (a non-empty array)")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            raise _bad(f"messages.{i}.role: must be 'user', 'assistant' or 'system'")
        content = message.get("content")
        if role == "system":  # a system message mid-conversation (Claude Code sends them)
            if isinstance(content, list):
                content = "".join(_texts(content, f"messages.{i}.content"))
            if not isinstance(content, str):
                raise _bad(f"messages.{i}.content: must be a string or an array of text blocks")
            out.append({"role": "system", "content": content})
        elif isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            out.extend(_blocks(role, content, i))
        else:
            raise _bad(f"messages.{i}.content: must be a string or an array of blocks")
    return out


def _blocks(role: str, blocks: list[Any], i: int) -> list[dict[str, Any]]:
    """One Anthropic message → OpenAI messages: tool results become `tool` messages."""
    parts: list[dict[str, Any]] = []  # text and image parts, in order
    thinking, calls, results = [], [], []
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"messages.{i}.content.{j}"
        if kind == "text":
            parts.append({"type": "text", "text": _string(block, "text", where)})
        elif kind == "image" and role == "user":
            parts.append(_image(block, where))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(_string(block, "thinking", where, required=False))
        elif kind == "tool_use" and role == "assistant":
            tool_input = block.get("input")
            if tool_input is not None and not isinstance(tool_input, dict):
                raise _bad(f"{where}.input: must be an object")
            arguments = json.dumps(tool_input or {}, ensure_ascii=False)
            function = {"name": _string(block, "name", where), "arguments": arguments}
            ident = _string(block, "id", where)
            calls.append({"id": ident, "type": "function", "function": function})
        elif kind == "tool_result" and role == "user":
            content = block.get("content")
            if isinstance(content, list):
                content = "".join(_texts(content, where))
            elif content is not None and not isinstance(content, str):
                raise _bad(f"{where}.content: must be a string or an array of text blocks")
            error = block.get("is_error")
            if error is not None and not isinstance(error, bool):
                raise _bad(f"{where}.is_error: must be true or false")
            if error:
                content = f"Error: {content}"
            tool_use_id = _string(block, "tool_use_id", where)
            results.append({"role": "tool", "tool_call_id": tool_use_id, "content": content or ""})
        else:
            raise _bad(f"{where}: a {kind!r} block is not supported in a {role} message")
    out: list[dict[str, Any]] = list(results)
    if parts or calls or thinking or not results:
        message: dict[str, Any] = {
            "role": role,
            "content": content_parts(parts) or (None if calls else ""),
        }
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["reasoning_content"] = "".join(thinking)
        out.append(message)
    return out


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A base64 `image` block as an OpenAI part; a vision model's worker checks it."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind != "base64" or not isinstance(source, dict):
        raise _bad(f"{where}.source: only base64 images are supported (the server fetches no URLs)")
    media_type = _string(source, "media_type", f"{where}.source")
    return image_part(_string(source, "data", f"{where}.source"), media_type)


def _texts(blocks: list[Any], where: str) -> list[str]:
    texts = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"{where}.{j}: only text blocks are supported here")
        texts.append(_string(block, "text", f"{where}.{j}"))
    return texts


def _string(block: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = block.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where}.{name}: must be a string")
    return value


def _tool(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise _bad(f"tools.{i}: a tool needs a name and an input_schema")
    if tool.get("type") not in (None, "custom"):
        raise _bad(f"tools.{i}: server tools ({tool['type']}) are not supported")
    schema = tool.get("input_schema")
    if schema is not None and not isinstance(schema, dict):
        raise _bad(f"tools.{i}.input_schema: must be a JSON schema object")
    function = {
        "name": tool["name"],
        "description": _string(tool, "description", f"tools.{i}", required=False),
        "parameters": schema or {"type": "object", "properties": {}},
    }
    return {"type": "function", "function": function}


def _bad(message: str) -> APIError:
    return APIError(400, message, code="invalid_request")
