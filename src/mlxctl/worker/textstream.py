"""Decoded model text → OpenAI output: content, reasoning and tool calls.

A stream is fed the text of each token as it arrives and returns a `Delta`
that is safe to send at once:

- stop strings are never emitted, even split across tokens: any tail that could
  still begin a stop string (or a marker) is held back until it cannot;
- `<think>…</think>` goes to `reasoning`, never raw into `content`; a prompt
  that leaves `<think>` open starts the stream in reasoning;
- `<tool_call>…</tool_call>` bodies (the model's own markers, from mlx-lm's tool
  parser for it) are parsed into `ToolCall`s;
- gpt-oss Harmony output (`<|channel|>analysis|final|commentary`) is handled by
  `HarmonyStream` with the same interface.

Pure text: no tokenizer calls, no MLX. `StreamSyntax.from_tokenizer` reads the
markers once at startup.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mlxctl import parsers
from mlxctl.engine import mlxlm

ToolParser = Callable[[str, Any], Any]
_HARMONY_MARKERS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>")


@dataclass(frozen=True)
class ToolSyntax:
    start: str
    end: str  # "" when calls run to the end of the output
    parse: ToolParser
    name: str = ""


@dataclass(frozen=True)
class StreamSyntax:
    """The output markers of one model, read from its tokenizer (or registry overrides)."""

    think: tuple[str, str] | None = None
    tool: ToolSyntax | None = None
    harmony: bool = False
    reasoning_parser: str = "none"

    @property
    def tool_parser(self) -> str | None:
        """The tool-call parser in use, as the audit line and `mlxctl verify` name it."""
        if self.harmony:
            return parsers.HARMONY
        return (self.tool.name or "inferred") if self.tool else None

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        *,
        tool_parser: str | None = None,
        reasoning_parser: str | None = None,
    ) -> StreamSyntax:
        """Markers mlx-lm inferred for this tokenizer; registry parser names override them.

        Names go through `mlxctl.parsers` (`harmony`, `qwen3_moe`, `hermes`, ... as users
        write them); an unknown name is `InvalidInput` naming the known ones.
        """
        tool_name = parsers.tool_parser(tool_parser) if tool_parser else None
        reasoning = parsers.reasoning_parser(reasoning_parser) if reasoning_parser else None
        vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
        harmony = parsers.HARMONY in (tool_name, reasoning) or (
            reasoning is None and all(m in vocab for m in ("<|channel|>", "<|message|>"))
        )
        think: tuple[str, str] | None = None
        if not harmony and reasoning != parsers.NONE:
            if getattr(tokenizer, "has_thinking", False):
                think = (tokenizer.think_start, tokenizer.think_end)
            elif reasoning:
                think = ("<think>", "</think>")
        # Harmony carries its tool calls in its own channels (HarmonyStream).
        tool = None if harmony else _tool_syntax(tokenizer, tool_name)
        name = parsers.HARMONY if harmony else (reasoning or ("think" if think else "none"))
        return cls(think=think, tool=tool, harmony=harmony, reasoning_parser=name)


def _tool_syntax(tokenizer: Any, module_name: str | None) -> ToolSyntax | None:
    if module_name:
        module = mlxlm.tool_parser(module_name)  # checked by parsers.tool_parser
        return ToolSyntax(
            module.tool_call_start, module.tool_call_end or "", module.parse_tool_call, module_name
        )
    if not getattr(tokenizer, "has_tool_calling", False):
        return None
    name = str(getattr(tokenizer, "init_kwargs", {}).get("tool_parser_type", "") or "")
    return ToolSyntax(
        tokenizer.tool_call_start, tokenizer.tool_call_end or "", tokenizer.tool_parser, name
    )


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str = field(default_factory=lambda: "call_" + secrets.token_hex(12))


@dataclass
class Delta:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


class OutputStream(Protocol):
    stop: tuple[str, ...]
    stopped: bool
    matched_stop: str | None

    def feed(self, text: str) -> Delta: ...

    def finish(self, *, drop: bool = False) -> Delta: ...


def split_at_marker(buf: str, markers: Sequence[str]) -> tuple[str, str | None, str]:
    """(safe text, first marker found or None, remainder).

    With no marker in `buf`, the remainder is the longest tail that is a proper
    prefix of some marker: it must be held back until more text decides it.
    """
    best: tuple[int, int] | None = None
    for marker in markers:
        i = buf.find(marker)
        if i >= 0 and (best is None or (i, -len(marker)) < (best[0], -best[1])):
            best = (i, len(marker))
    if best is not None:
        i, n = best
        return buf[:i], buf[i : i + n], buf[i + n :]
    hold = 0
    for marker in markers:
        for k in range(min(len(marker) - 1, len(buf)), hold, -1):
            if buf.endswith(marker[:k]):
                hold = k
                break
    return buf[: len(buf) - hold], None, buf[len(buf) - hold :]


Mode = Literal["content", "reasoning", "tool"]


class TextStream:
    """Stop strings, `<think>` reasoning and tool-call markers over streamed text."""

    def __init__(
        self,
        syntax: StreamSyntax,
        *,
        stop: Sequence[str] = (),
        tools: list[dict[str, Any]] | None = None,
        starts_in_reasoning: bool = False,
    ) -> None:
        self.syntax = syntax
        self.stop = tuple(stop)
        self.tools = tools
        self.stopped = False
        self.matched_stop: str | None = None  # the stop string that ended the output
        self._tool = syntax.tool if tools else None
        self._mode: Mode = "reasoning" if starts_in_reasoning and syntax.think else "content"
        self._buf = ""  # text not yet known to be free of markers
        self._ws = ""  # trailing whitespace held until the segment goes on
        self._strip_lead = self._mode == "reasoning"
        self._body = ""  # the current tool call's text

    def feed(self, text: str) -> Delta:
        out = Delta()
        if self.stopped:
            return out
        self._buf += text
        while True:
            safe, marker, self._buf = split_at_marker(self._buf, self._markers())
            self._emit(safe, out)
            if marker is None:
                return out
            if marker in self.stop:
                self.stopped, self.matched_stop = True, marker
                self._buf = ""
                self._flush_ws(out)
                return out
            self._switch(marker, out)

    def finish(self, *, drop: bool = False) -> Delta:
        """End of output: release held-back text, or `drop` it (the engine matched a stop)."""
        out = Delta()
        self.stopped = self.stopped or drop
        if not self.stopped:
            self._emit(self._buf, out)
        self._buf = ""
        if self._mode == "tool":
            self._end_tool(out, closed=False)
        self._flush_ws(out)
        return out

    def _markers(self) -> list[str]:
        markers = list(self.stop)
        think, tool = self.syntax.think, self._tool
        if self._mode == "tool":
            assert tool is not None
            return [*markers, tool.end] if tool.end else markers
        if think:
            markers.append(think[0] if self._mode == "content" else think[1])
        if tool:
            markers.append(tool.start)
        return markers

    def _emit(self, text: str, out: Delta) -> None:
        if self._mode == "tool":
            self._body += text
            return
        if self._strip_lead:
            text = text.lstrip()
            self._strip_lead = not text
        joined = self._ws + text
        body = joined.rstrip()
        self._ws = joined[len(body) :]
        if self._mode == "reasoning":
            out.reasoning += body
        else:
            out.content += body

    def _flush_ws(self, out: Delta) -> None:
        if self._mode == "reasoning":
            out.reasoning += self._ws
        elif self._mode == "content":
            out.content += self._ws
        self._ws = ""

    def _switch(self, marker: str, out: Delta) -> None:
        # Whitespace around markers is layout, not text: drop it on both sides.
        self._ws = ""
        self._strip_lead = True
        if self._mode == "tool":
            self._end_tool(out, closed=True)
            self._mode = "content"
        elif self._tool is not None and marker == self._tool.start:
            self._mode, self._body = "tool", ""
        elif self._mode == "content":
            self._mode = "reasoning"
        else:
            self._mode = "content"

    def _end_tool(self, out: Delta, *, closed: bool) -> None:
        assert self._tool is not None
        calls = parse_tool_calls(self._tool.parse, self._body, self.tools)
        if calls is None:
            end = self._tool.end if closed else ""
            out.content += self._tool.start + self._body + end  # unparseable: keep it visible
        else:
            out.tool_calls.extend(calls)
        self._body = ""
        self._mode = "content"


def parse_tool_calls(parse: ToolParser, body: str, tools: Any) -> list[ToolCall] | None:
    """The calls in one marker-delimited body, or None when the parser rejects it."""
    try:
        parsed = parse(body, tools)
    except Exception:  # each mlx-lm parser raises its own errors on malformed text
        return None
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        args = item.get("arguments", {})
        calls.append(ToolCall(item["name"], args if isinstance(args, str) else json.dumps(args)))
    return calls


class HarmonyStream:
    """gpt-oss Harmony output: analysis → reasoning, final → content, tool calls.

    The prompt ends with `<|start|>assistant`, so the output begins in a message
    header: `<|channel|>NAME [to=functions.X] [<|constrain|>json]<|message|>BODY`
    closed by `<|end|>`, `<|return|>` or `<|call|>` (often an EOS the engine
    strips: an open body is closed by `finish`).
    """

    def __init__(self, *, stop: Sequence[str] = ()) -> None:
        self.stop = tuple(stop)
        self.stopped = False
        self.matched_stop: str | None = None  # the stop string that ended the output
        self._in_body = False
        self._header = ""
        self._channel = ""
        self._recipient = ""
        self._buf = ""
        self._body = ""

    def feed(self, text: str) -> Delta:
        out = Delta()
        if self.stopped:
            return out
        self._buf += text
        while True:
            markers = [*_HARMONY_MARKERS, *(self.stop if self._is_text() else ())]
            safe, marker, self._buf = split_at_marker(self._buf, markers)
            self._take(safe, out)
            if marker is None:
                return out
            if marker in self.stop:
                self.stopped, self.matched_stop = True, marker
                self._buf = ""
                return out
            self._on_marker(marker, out)

    def finish(self, *, drop: bool = False) -> Delta:
        out = Delta()
        self.stopped = self.stopped or drop
        if not self.stopped:
            self._take(self._buf, out)
        self._buf = ""
        if self._in_body:
            self._close_body(out)
        return out

    def _is_text(self) -> bool:
        return self._in_body and self._channel in ("final", "analysis") and not self._recipient

    def _take(self, text: str, out: Delta) -> None:
        if not self._in_body:
            self._header += text
        elif self._recipient:
            self._body += text
        elif self._channel == "analysis":
            out.reasoning += text
        else:
            out.content += text

    def _on_marker(self, marker: str, out: Delta) -> None:
        if marker == "<|message|>" and not self._in_body:
            self._open_body()
        elif marker in ("<|end|>", "<|return|>", "<|call|>") and self._in_body:
            self._close_body(out)
        elif marker == "<|start|>":
            if self._in_body:
                self._close_body(out)
            self._header = ""
        elif not self._in_body:
            self._header += marker  # <|channel|> and <|constrain|> stay in the header

    def _open_body(self) -> None:
        header = self._header.replace("<|constrain|>", " ")
        channel = header.split("<|channel|>", 1)[1] if "<|channel|>" in header else header
        words = channel.split()
        self._channel = words[0] if words else ""
        to = [w[3:] for w in header.replace("<|channel|>", " ").split() if w.startswith("to=")]
        self._recipient = to[0] if to else ""
        self._in_body, self._body, self._header = True, "", ""

    def _close_body(self, out: Delta) -> None:
        if self._recipient:
            name = self._recipient.removeprefix("functions.")
            out.tool_calls.append(ToolCall(name, self._body.strip() or "{}"))
        self._in_body, self._recipient, self._channel, self._body = False, "", "", ""


def make_stream(
    syntax: StreamSyntax,
    *,
    stop: Sequence[str] = (),
    tools: list[dict[str, Any]] | None = None,
    starts_in_reasoning: bool = False,
    chat: bool = True,
) -> OutputStream:
    """The right stream for a request; completions get stop handling only."""
    if not chat:
        return TextStream(StreamSyntax(), stop=stop)
    if syntax.harmony:
        return HarmonyStream(stop=stop)
    return TextStream(syntax, stop=stop, tools=tools, starts_in_reasoning=starts_in_reasoning)
