"""Responses API items ↔ chat messages: what a conversation is made of.

Input comes as a string or a list of items; each is checked and given an id, then
kept as is (the store and `input_items` return them). `to_messages` turns a
conversation's items into the chat messages the worker renders:

    message (user | system | developer | assistant)  → a chat message (developer → system)
    function_call                                    → an assistant message's tool_calls
    function_call_output                             → a `tool` message
    reasoning                                        → the next assistant message's reasoning

Content parts may be `input_text`, `output_text` or `refusal`; images, files,
audio and item references are refused with a 400 naming the item.
"""

from __future__ import annotations

import uuid
from typing import Any

from mlxctl.api.errors import APIError

Item = dict[str, Any]

# Tuples, not sets: a client's value may be unhashable (a dict where a string belongs).
_ROLES = ("user", "system", "developer", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "refusal", "text", "summary_text", "reasoning_text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(value: Any) -> list[Item]:
    """The request's `input` as checked items, each with an id."""
    if isinstance(value, str):
        return [_message("user", [{"type": "input_text", "text": value}])]
    if not isinstance(value, list) or not value:
        raise bad("'input' must be a string or a non-empty array of input items", "input")
    items = [_item(item, f"input[{i}]") for i, item in enumerate(value)]
    if all(item["type"] == "reasoning" for item in items):
        raise bad("'input' needs a message or function call item, not only reasoning", "input")
    return items


def to_messages(items: list[Item]) -> list[dict[str, Any]]:
    """A conversation's items as chat messages (consecutive calls share one message)."""
    messages: list[dict[str, Any]] = []
    reasoning = ""
    for item in items:
        kind = item["type"]
        if kind == "reasoning":
            reasoning += _reasoning_text(item)
            continue
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            message: dict[str, Any] = {"role": role, "content": _text(item["content"])}
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and not reasoning:
                last.setdefault("tool_calls", []).append(call)
                continue
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:  # function_call_output
            output = item["output"]
            text = output if isinstance(output, str) else _text(output)
            message = {"role": "tool", "tool_call_id": item["call_id"], "content": text}
        if reasoning and message["role"] == "assistant":
            message["reasoning_content"], reasoning = reasoning, ""
        messages.append(message)
    return messages


def _item(item: Any, where: str) -> Item:
    if not isinstance(item, dict):
        raise bad(f"'{where}' must be an object", where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise bad(f"'{where}.role' must be one of {', '.join(_ROLES)}", f"{where}.role")
        content = item.get("content")
        if isinstance(content, str):
            part = "output_text" if role == "assistant" else "input_text"
            content = [{"type": part, "text": content}]
        out = _message(role, _parts(content, f"{where}.content"), item.get("id"))
        if role == "assistant":
            out["status"] = "completed"
        return out
    if kind == "function_call":
        name = _string(item, "name", where)
        arguments = _string(item, "arguments", where)
        call_id = _string(item, "call_id", where)
        return {
            "type": "function_call",
            "id": _id(item, "fc"),
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
    if kind == "function_call_output":
        output = item.get("output")
        if not isinstance(output, str):
            _parts(output, f"{where}.output")
        return {
            "type": "function_call_output",
            "id": _id(item, "fco"),
            "call_id": _string(item, "call_id", where),
            "output": output,
            "status": "completed",
        }
    if kind == "reasoning":
        for name in ("summary", "content"):
            if item.get(name) is not None:
                _parts(item[name], f"{where}.{name}")
        # encrypted_content is another server's sealed state: nothing here can read it.
        return {
            "type": "reasoning",
            "id": _id(item, "rs"),
            "summary": item.get("summary") or [],
            "content": item.get("content") or [],
        }
    raise bad(
        f"'{where}': input items of type {kind!r} are not supported here; use message, "
        "function_call, function_call_output or reasoning items",
        f"{where}.type",
    )


def _message(role: str, content: list[Any], ident: Any = None) -> Item:
    item_id = ident if isinstance(ident, str) and ident else new_id("msg")
    return {"type": "message", "id": item_id, "role": role, "content": content}


def _parts(parts: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(parts, list):
        raise bad(f"'{where}' must be a string or an array of content parts", where)
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise bad(
                f"'{where}[{i}]': content parts of type {kind!r} are not supported here; "
                "use input_text (this model reads text only)",
                f"{where}[{i}]",
            )
    return parts


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for part in parts)


def _reasoning_text(item: Item) -> str:
    return _text(item["content"]) or _text(item["summary"])


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise bad(f"'{where}.{name}' must be a string", f"{where}.{name}")
    return value


def _id(item: dict[str, Any], prefix: str) -> str:
    ident = item.get("id")
    return ident if isinstance(ident, str) and ident else new_id(prefix)


def bad(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")
