"""Request bodies of `/v1/chat/completions` and `/v1/completions`, checked and parsed.

`parse_chat` and `parse_completion` turn a decoded JSON body into a `RequestSpec`
or raise a 400 `APIError` naming the param. What we cannot honour is refused,
never silently ignored: `n > 1`, image/audio parts, unknown `response_format`
types, and every OpenAI field we do not implement. A short list of harmless
fields (`user`, `metadata`, `store`, ...) is accepted and ignored.

A model's own defaults (ModelSpec `PARAMETER`s) come in as `defaults`, built
once by `request_defaults`: they fill the fields a request leaves unset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlxctl.engine.types import SamplingParams
from mlxctl.errors import InvalidInput
from mlxctl.jsonnum import as_int
from mlxctl.openai_fields import CHAT, COMPLETION, IGNORED, SAMPLING, TEST_FORCE_FIELD
from mlxctl.worker.openai_errors import APIError, invalid_request, unsupported

_MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Message fields the chat template reads as text (others pass through unchecked).
_MESSAGE_STRINGS = ("name", "tool_call_id", "reasoning_content")
_MAX_STOPS = 16
_MAX_STOP_CHARS = 256
_MAX_LOGIT_BIAS = 300  # OpenAI's own cap
_MAX_TOP_LOGPROBS = 20
# apply_chat_template arguments a request may not set through chat_template_kwargs:
# they change what rendering returns, not what the template sees.
_RESERVED_TEMPLATE_KWARGS = {
    "conversation",
    "messages",
    "tools",
    "add_generation_prompt",
    "continue_final_message",
    "tokenize",
    "tokenizer_kwargs",
    "padding",
    "truncation",
    "max_length",
}


@dataclass
class RequestSpec:
    """Everything the app needs from one request body, already validated."""

    kind: Literal["chat", "completion"]
    sampling: SamplingParams
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    response_format: dict[str, Any] | None = None
    # chat
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    # completion: text, or token ids
    prompt: str | list[int] | None = None
    force_text: str | None = None


# Model options (ModelSpec PARAMETER names, and Ollama's) → the request field they default.
_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "repetition_penalty": "repetition_penalty",
    "repeat_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "max_tokens": "max_tokens",
    "num_predict": "max_tokens",
    "stop": "stop",
}


def request_defaults(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A model's options as request-field defaults, checked like a request; and the
    option names the worker cannot apply (e.g. `repetition_context_size`, `num_ctx`).

    Raises InvalidInput for a value no request could carry, so a bad model fails at
    startup instead of turning every request into a 400.
    """
    defaults: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in options.items():
        target = _OPTION_FIELDS.get(name)
        if target is None or value is None:
            ignored.append(name)
        elif name == target or target not in defaults:  # the canonical name wins an alias
            defaults[target] = value
    if defaults.get("max_tokens") == -1:
        del defaults["max_tokens"]  # Ollama's num_predict -1: no limit
    try:
        _sampling(defaults, 0, logprobs=False, top_logprobs=0)
        _stop(defaults)
        _int(defaults, "max_tokens", 1, None)
    except APIError as e:
        raise InvalidInput(f"the model's PARAMETER {e.param}: {e.message}") from None
    return defaults, ignored


def _with_defaults(data: dict[str, Any], defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request with unset fields taken from the model's defaults (request values win)."""
    if not defaults:
        return data
    merged = dict(data)
    for name, value in defaults.items():
        # max_completion_tokens is the chat spelling of max_tokens: either one in the request wins.
        if name == "max_tokens" and data.get("max_completion_tokens") is not None:
            continue
        if merged.get(name) is None:
            merged[name] = value
    return merged


def parse_chat(
    data: dict[str, Any],
    *,
    vocab_size: int,
    test_hooks: bool = False,
    defaults: Mapping[str, Any] | None = None,
    client_templates: bool = False,
) -> RequestSpec:
    """A chat request; `defaults` (from `request_defaults`) fill the fields it leaves unset.

    `chat_template_kwargs.chat_template` (a template of the client's own) is refused
    unless `client_templates` (MLXCTL_ALLOW_CLIENT_TEMPLATES).
    """
    _check_fields(data, IGNORED | SAMPLING | CHAT, test_hooks)
    data = _with_defaults(data, defaults)
    messages = _messages(data.get("messages"))
    tools = _tools(data)
    logprobs = _bool(data, "logprobs")
    top = _int(data, "top_logprobs", 0, _MAX_TOP_LOGPROBS)
    if top and not logprobs:
        raise invalid_request("'top_logprobs' requires 'logprobs': true", "top_logprobs")
    # Both spellings are checked, whichever one wins.
    max_tokens, older = (
        _int(data, "max_completion_tokens", 1, None),
        _int(data, "max_tokens", 1, None),
    )
    max_tokens = older if max_tokens is None else max_tokens
    kwargs = _template_kwargs(data.get("chat_template_kwargs"), client_templates)
    return RequestSpec(
        kind="chat",
        sampling=_sampling(data, vocab_size, logprobs=bool(logprobs), top_logprobs=top or 0),
        max_tokens=max_tokens,
        stop=_stop(data),
        stream=bool(_bool(data, "stream")),
        include_usage=_include_usage(data),
        response_format=_response_format(data),
        messages=messages,
        tools=tools,
        template_kwargs=kwargs,
        force_text=_force(data, test_hooks),
    )


def parse_completion(
    data: dict[str, Any],
    *,
    vocab_size: int,
    test_hooks: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> RequestSpec:
    """A completion request; `defaults` as for `parse_chat`."""
    _check_fields(data, IGNORED | SAMPLING | COMPLETION, test_hooks)
    data = _with_defaults(data, defaults)
    if _bool(data, "echo"):
        raise unsupported("echo", "= true is not supported")
    if data.get("suffix") not in (None, ""):
        raise unsupported("suffix")
    if _int(data, "best_of", 1, None) not in (None, 1):
        raise unsupported("best_of", "> 1 is not supported")
    # Legacy completions take `logprobs` as the number of alternatives (0-5).
    top = _int(data, "logprobs", 0, 5)
    return RequestSpec(
        kind="completion",
        sampling=_sampling(data, vocab_size, logprobs=top is not None, top_logprobs=top or 0),
        max_tokens=_int(data, "max_tokens", 1, None),
        stop=_stop(data),
        stream=bool(_bool(data, "stream")),
        include_usage=_include_usage(data),
        response_format=_response_format(data),
        prompt=_prompt(data.get("prompt"), vocab_size),
        force_text=_force(data, test_hooks),
    )


def _check_fields(data: dict[str, Any], known: frozenset[str], test_hooks: bool) -> None:
    allowed = known | ({TEST_FORCE_FIELD} if test_hooks else set())
    for name, value in data.items():
        if name not in allowed:
            raise unsupported(name)
        if name == "modalities" and value != ["text"]:  # text out is what we do anyway
            raise unsupported(name, 'other than ["text"] is not supported')
    n = _int(data, "n", 1, None)
    if n not in (None, 1):
        raise unsupported("n", "> 1 is not supported: send one request per completion")


def _messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise invalid_request("Missing required parameter: 'messages'.", "messages")
    if not isinstance(value, list) or not value:
        raise invalid_request("'messages' must be a non-empty array", "messages")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in _MESSAGE_ROLES:  # {} is unhashable
            raise invalid_request(
                f"'{where}.role' must be one of {', '.join(sorted(_MESSAGE_ROLES))}",
                f"{where}.role",
            )
        for name in _MESSAGE_STRINGS:
            if message.get(name) is not None and not isinstance(message[name], str):
                raise invalid_request(f"'{where}.{name}' must be a string", f"{where}.{name}")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise invalid_request(f"'{where}.tool_calls' must be an array", f"{where}.tool_calls")
        clean = dict(message)
        clean["role"] = "system" if role == "developer" else role
        clean["content"] = _content(message.get("content"), f"{where}.content", role)
        out.append(clean)
    return out


def _content(value: Any, where: str, role: str) -> str | None:
    """Text content; a list of parts is joined. Non-text parts are refused."""
    if value is None:
        if role in ("assistant",):
            return None
        raise invalid_request(f"'{where}' is required for role '{role}'", where)
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid_request(f"'{where}' must be a string or an array of parts", where)
    texts = []
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_audio", "file", "image", "audio"):
            raise invalid_request(
                f"'{where}[{j}]' is a {kind} part, but this is a text-only model",
                f"{where}[{j}]",
                code="unsupported_content",
            )
        else:
            raise invalid_request(f"'{where}[{j}]' is not a valid content part", f"{where}[{j}]")
    return "".join(texts)


def _template_kwargs(value: Any, client_templates: bool) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_request("'chat_template_kwargs' must be an object", "chat_template_kwargs")
    for name in value:
        param = f"chat_template_kwargs.{name}"
        if name in _RESERVED_TEMPLATE_KWARGS or str(name).startswith("return_"):
            raise unsupported(param, "cannot be set by a request")
        if name == "chat_template" and not client_templates:
            raise unsupported(
                param,
                "is refused: this server renders only the model's own chat template "
                "(its operator may allow client templates with MLXCTL_ALLOW_CLIENT_TEMPLATES=1)",
            )
    if "chat_template" in value and not isinstance(value["chat_template"], str):
        raise invalid_request(
            "'chat_template_kwargs.chat_template' must be a string",
            "chat_template_kwargs.chat_template",
        )
    return dict(value)


def _tools(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = data.get("tools")
    choice = data.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise unsupported("tool_choice", "other than 'auto' or 'none' is not supported")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise invalid_request(f"'tools[{i}]' must be a function tool", f"tools[{i}]")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise invalid_request(f"'tools[{i}].function.name' is required", f"tools[{i}]")
        for name, kind in (("description", str), ("parameters", dict)):
            if fn.get(name) is not None and not isinstance(fn[name], kind):
                what = "a string" if kind is str else "a JSON schema object"
                where = f"tools[{i}].function.{name}"
                raise invalid_request(f"'{where}' must be {what}", where)
    return None if choice == "none" or not tools else list(tools)


def _sampling(
    data: dict[str, Any], vocab_size: int, *, logprobs: bool, top_logprobs: int
) -> SamplingParams:
    temperature = _float(data, "temperature", 0.0, 2.0)
    top_p = _float(data, "top_p", 0.0, 1.0)
    repetition = _float(data, "repetition_penalty", 0.0, 10.0)
    if repetition is not None and repetition <= 0:
        raise invalid_request("'repetition_penalty' must be > 0", "repetition_penalty")
    seed = _int(data, "seed", None, None)
    return SamplingParams(
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None or top_p == 0 else top_p,
        top_k=_int(data, "top_k", 0, None) or 0,
        min_p=_float(data, "min_p", 0.0, 1.0) or 0.0,
        seed=seed,
        repetition_penalty=repetition,
        frequency_penalty=_float(data, "frequency_penalty", -2.0, 2.0) or 0.0,
        presence_penalty=_float(data, "presence_penalty", -2.0, 2.0) or 0.0,
        logit_bias=_logit_bias(data.get("logit_bias"), vocab_size),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def _logit_bias(value: Any, vocab_size: int) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_request("'logit_bias' must be an object of token id → bias", "logit_bias")
    if len(value) > _MAX_LOGIT_BIAS:
        raise invalid_request(
            f"'logit_bias' takes at most {_MAX_LOGIT_BIAS} tokens, got {len(value)}", "logit_bias"
        )
    bias = {}
    for key, amount in value.items():
        # Only plain digits: int() would also take "+1", " 1", "1_0" and other scripts' digits.
        if not (key.isascii() and key.isdigit()):
            raise invalid_request(f"'logit_bias' key {key!r} is not a token id", "logit_bias")
        token = int(key)
        if not 0 <= token < vocab_size:
            raise invalid_request(f"'logit_bias' token {token} is out of range", "logit_bias")
        if not _is_number(amount) or not -100 <= amount <= 100:
            raise invalid_request(
                "'logit_bias' values must be numbers in [-100, 100]", "logit_bias"
            )
        bias[token] = float(amount)
    return bias


def _stop(data: dict[str, Any]) -> list[str]:
    value = data.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid_request("'stop' must be a non-empty string or an array of them", "stop")
    if len(stops) > _MAX_STOPS:
        raise invalid_request(f"'stop' takes at most {_MAX_STOPS} strings", "stop")
    if any(len(s) > _MAX_STOP_CHARS for s in stops):
        raise invalid_request(
            f"each 'stop' string may be at most {_MAX_STOP_CHARS} characters long", "stop"
        )
    return list(dict.fromkeys(stops))


def _include_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid_request("'stream_options' must be an object", "stream_options")
    if not data.get("stream"):
        raise invalid_request(
            "'stream_options' is only allowed with 'stream': true", "stream_options"
        )
    return bool(options.get("include_usage"))


def _response_format(data: dict[str, Any]) -> dict[str, Any] | None:
    """None for plain text, else {"type": "json_object"} or {"type": "json_schema", "schema"}."""
    value = data.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_request("'response_format' must be an object", "response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid_request(
                "'response_format.json_schema.schema' must be a JSON Schema object",
                "response_format.json_schema.schema",
            )
        return {"type": "json_schema", "schema": schema}
    raise invalid_request(
        f"'response_format.type' {kind!r} is not supported: use text, json_object or json_schema",
        "response_format.type",
    )


def _prompt(value: Any, vocab_size: int) -> str | list[int]:
    if value is None:
        raise invalid_request("Missing required parameter: 'prompt'.", "prompt")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]  # a batch of one
    if value == "":
        raise invalid_request("'prompt' is empty: there are no tokens to continue", "prompt")
    if isinstance(value, str):
        return value
    ids = [as_int(t) for t in value] if isinstance(value, list) else []
    if value and ids and None not in ids:
        tokens = [t for t in ids if t is not None]
        if not all(0 <= t < vocab_size for t in tokens):
            raise invalid_request("'prompt' holds a token id out of range", "prompt")
        return tokens
    if isinstance(value, list) and len(value) > 1:
        raise unsupported("prompt", "as a batch of several prompts is not supported")
    raise invalid_request("'prompt' must be a string or an array of token ids", "prompt")


def _force(data: dict[str, Any], test_hooks: bool) -> str | None:
    value = data.get(TEST_FORCE_FIELD) if test_hooks else None
    if value is not None and not isinstance(value, str):
        raise invalid_request(f"'{TEST_FORCE_FIELD}' must be a string", TEST_FORCE_FIELD)
    return value


def _bool(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid_request(f"'{name}' must be a boolean", name)
    return value


def _int(data: dict[str, Any], name: str, lo: int | None, hi: int | None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    number = as_int(value)
    if number is None:
        raise invalid_request(f"'{name}' must be an integer", name)
    _range(name, number, lo, hi)
    return number


def _float(data: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise invalid_request(f"'{name}' must be a number", name)
    _range(name, value, lo, hi)
    return float(value)


def _range(name: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise invalid_request(f"'{name}' must be in {bounds}, got {value}", name)


def _is_number(value: Any) -> bool:
    return as_int(value) is not None or (isinstance(value, float) and math.isfinite(value))


__all__ = [
    "APIError",
    "RequestSpec",
    "parse_chat",
    "parse_completion",
    "request_defaults",
]
