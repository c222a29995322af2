"""Chat messages → prompt token ids, through the model's chat template.

`ChatPrompter` renders with the tokenizer's own template, or with the registry's
override file when one is set, passing tools, tool results and template kwargs
such as `enable_thinking`. It also reports whether the rendered prompt leaves a
`<think>` block open (Qwen3-style templates that start the answer in reasoning),
so the text stream can begin in reasoning mode.

A store model's `SYSTEM` and `MESSAGE` turns are applied here, as Ollama applies
a Modelfile's: the system prompt when the conversation has none, the few-shot
turns after the system message and before the conversation.

Rendering is CPU-bound Jinja plus tokenization: callers on the event loop run
`render` in a worker thread, under a deadline. A template the request brings
(`chat_template_kwargs.chat_template`, accepted only under
MLXCTL_ALLOW_CLIENT_TEMPLATES) renders in the sandbox process instead
(engine/templatebox.py). Either way a prompt longer than `max_chars` is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxctl.engine.templatebox import TemplateSandbox
from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings
from mlxctl.worker.openai_errors import invalid_request

# Variables transformers passes every template beside the messages (special tokens).
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token")


@dataclass(frozen=True)
class RenderedPrompt:
    tokens: list[int]
    text: str
    starts_in_reasoning: bool


class ChatPrompter:
    """Renders chat requests for one tokenizer (an mlx-lm `TokenizerWrapper`)."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        template_path: str | Path | None = None,
        think_markers: tuple[str, str] | None = None,
        system: str | None = None,
        few_shot: Sequence[dict[str, Any]] = (),
        sandbox: TemplateSandbox | None = None,
        max_chars: int = Settings.template_max_chars,
    ) -> None:
        self.tokenizer = tokenizer
        self.sandbox = sandbox
        self.max_chars = max_chars
        self.system = system
        self.few_shot = [dict(m) for m in few_shot]
        self.template: str | None = None
        self.template_source = "tokenizer"
        if template_path:
            self.template = Path(template_path).expanduser().read_text(encoding="utf-8")
            self.template_source = f"registry:{template_path}"
        elif not getattr(tokenizer, "has_chat_template", False):
            self.template_source = "none"
        self.think_markers = think_markers

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> RenderedPrompt:
        """Token ids of the prompt, ending with the assistant's generation header."""
        kwargs = dict(template_kwargs or {})
        client_template = kwargs.pop("chat_template", None)
        if client_template is not None:
            text = self._render_client(str(client_template), messages, tools, kwargs)
        else:
            text = self._render_own(messages, tools, kwargs)
        if len(text) > self.max_chars:
            raise invalid_request(
                f"The rendered prompt is {len(text)} characters, more than the "
                f"{self.max_chars} a prompt may have (MLXCTL_TEMPLATE_MAX_CHARS).",
                "messages",
                code="prompt_too_long",
            )
        tokens = list(self.tokenizer.encode(text, add_special_tokens=False))
        return RenderedPrompt(tokens, text, self._opens_reasoning(text))

    def _render_own(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        kwargs: dict[str, Any],
    ) -> str:
        """The model's template (or the registry's override), through the tokenizer."""
        if self.template_source == "none":
            raise invalid_request(
                "This model has no chat template; use /v1/completions or set a "
                "template with `mlxctl registry set MODEL --chat-template FILE`.",
                "messages",
                code="no_chat_template",
            )
        if self.template is not None:
            kwargs["chat_template"] = self.template
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    [_template_message(m) for m in self.with_preamble(messages)],
                    tools=tools,
                    add_generation_prompt=True,
                    tokenize=False,
                    **kwargs,
                )
            )
        except Exception as e:  # Jinja raises its own error types, often with useful text
            raise invalid_request(
                f"The chat template could not render these messages: {e}", "messages"
            ) from e

    def _render_client(
        self,
        template: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        kwargs: dict[str, Any],
    ) -> str:
        """A template from the request, in the sandbox process (never in this one)."""
        if self.sandbox is None:
            raise invalid_request(
                "'chat_template_kwargs.chat_template' is not accepted by this server.",
                "chat_template_kwargs.chat_template",
                code="unsupported_parameter",
            )
        variables = {
            **self._special_tokens(),
            **kwargs,
            "messages": [_template_message(m) for m in self.with_preamble(messages)],
            "tools": tools,
            "add_generation_prompt": True,
        }
        try:
            return self.sandbox.render(template, variables)
        except InvalidInput as e:
            raise invalid_request(e.message, "chat_template_kwargs.chat_template") from None

    def _special_tokens(self) -> dict[str, Any]:
        tokens = getattr(self.tokenizer, "special_tokens_map", None)
        if isinstance(tokens, dict):
            return {k: v for k, v in tokens.items() if isinstance(v, str | list)}
        found = {k: getattr(self.tokenizer, k, None) for k in _SPECIAL_TOKENS}
        return {k: v for k, v in found.items() if isinstance(v, str)}

    def with_preamble(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`messages` with the model's system prompt (unless they bring one) and few-shot turns."""
        split = 0
        while split < len(messages) and messages[split].get("role") == "system":
            split += 1
        head = list(messages[:split])
        if self.system is not None and not any(m.get("role") == "system" for m in messages):
            head = [{"role": "system", "content": self.system}]
        return [*head, *self.few_shot, *messages[split:]]

    def _opens_reasoning(self, text: str) -> bool:
        if self.think_markers is None:
            return False
        start, end = self.think_markers
        return text.rfind(start) > text.rfind(end)


def encode_prompt(tokenizer: Any, prompt: str | list[int]) -> list[int]:
    """Completion prompts: text is encoded as the model expects (BOS included), ids kept."""
    if isinstance(prompt, list):
        return list(prompt)
    return list(tokenizer.encode(prompt))


def _template_message(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI message → what HF templates expect (tool-call arguments as objects)."""
    out = {k: v for k, v in message.items() if v is not None or k == "content"}
    if out.get("content") is None:
        out["content"] = ""
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [_template_tool_call(call) for call in calls]
    return out


def _template_tool_call(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise invalid_request("Each tool call must have a 'function' object", "messages")
    fn = dict(call["function"])
    args = fn.get("arguments")
    if not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str | None):
        raise invalid_request("A tool call needs a string 'function.name' (and 'id')", "messages")
    if not isinstance(args, str | dict | None):
        raise invalid_request("Tool call 'arguments' must be a JSON string or object", "messages")
    if isinstance(args, str):
        # Templates render `arguments | tojson`; a JSON string would be quoted twice.
        try:
            fn["arguments"] = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            fn["arguments"] = args
    return {**call, "function": fn}
