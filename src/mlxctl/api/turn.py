"""One generation by a worker, as the translating dialects (Ollama, Anthropic) see it.

A dialect builds an OpenAI body and calls `Turn.open`; the worker is always asked
to stream (with usage), so the dialect gets typed pieces as they come and real
timings whether its own client streams or not:

    Text(content | thinking)      ToolStart(index, id, name)      ToolArgs(index, json)
    Finish(reason, prompt_tokens, completion_tokens)              (always last)

A non-streaming reply calls `collect()` instead: the whole generation as one
`Reply` (its text, thinking and tool calls in the order they began, and the
`Finish`). The worker's errors arrive as `APIError`s (status, message, param)
before the first piece; a worker lost mid-stream raises `WorkerLost`. The lease
is held until `aclose()` (`collect()` closes it itself).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from mlxctl.api.errors import APIError
from mlxctl.registry import ModelRecord
from mlxctl.router import Call, Exchange, Router, Upstream, lost
from mlxctl.scheduler import KeepAlive, WorkerLost


@dataclass(frozen=True)
class Text:
    content: str = ""
    thinking: str = ""


@dataclass(frozen=True)
class ToolStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class ToolArgs:
    index: int
    json: str


@dataclass(frozen=True)
class Finish:
    reason: str  # the worker's finish_reason: stop | length | tool_calls
    prompt_tokens: int
    completion_tokens: int
    stop_sequence: str | None = None  # the stop string that ended it, if one did


Piece = Text | ToolStart | ToolArgs | Finish


@dataclass
class ToolCall:
    """One whole tool call; `arguments` is the JSON text as the model wrote it."""

    index: int
    id: str
    name: str
    arguments: str = ""


@dataclass(frozen=True)
class Reply:
    """A whole generation: its parts in the order they began (consecutive text of one
    kind joined into one `Text`), and how it ended."""

    parts: list[Text | ToolCall]
    finish: Finish

    @property
    def content(self) -> str:
        return "".join(part.content for part in self.parts if isinstance(part, Text))

    @property
    def thinking(self) -> str:
        return "".join(part.thinking for part in self.parts if isinstance(part, Text))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return sorted((p for p in self.parts if isinstance(p, ToolCall)), key=lambda c: c.index)


@dataclass
class Timings:
    """perf_counter marks of one request; `*_ns` give Ollama's nanosecond durations."""

    started: float
    load_seconds: float = 0.0
    sent: float = 0.0
    first: float | None = None
    done: float | None = None

    def ns(self, seconds: float) -> int:
        return max(0, int(seconds * 1e9))

    def durations(self) -> dict[str, int]:
        done = self.done or time.perf_counter()
        first = self.first or done
        return {
            "total_duration": self.ns(done - self.started),
            "load_duration": self.ns(self.load_seconds),
            "prompt_eval_duration": self.ns(first - self.sent),
            "eval_duration": self.ns(done - first),
        }


class Turn:
    """An open streamed generation; iterate `pieces()` once, then `aclose()`."""

    def __init__(self, upstream: Upstream, timings: Timings, exchange: Exchange) -> None:
        self.upstream = upstream
        self.timings = timings
        self.exchange = exchange

    @classmethod
    async def open(
        cls,
        router: Router,
        record: ModelRecord,
        path: str,
        body: dict[str, Any],
        keep_alive: KeepAlive,
        exchange: Exchange,
        timings: Timings,
    ) -> Turn:
        """Send `body` (an OpenAI body) to the model's worker, streamed with usage."""
        body = {**body, "model": record.slug, "stream": True}
        body["stream_options"] = {"include_usage": True}
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        exchange.model = record.slug
        opening = time.perf_counter()
        upstream = await router.open(Call(record, path, raw, keep_alive, exchange.request_id))
        timings.load_seconds = upstream.load_seconds
        # The worker answers its headers after the first token: prefill began at the
        # hand-off, once the model was ready, not when the headers came back.
        timings.sent = opening + upstream.load_seconds
        if upstream.response.status_code >= 400:
            try:
                error = await _worker_error(upstream.response)
            finally:
                await upstream.aclose()
            raise error
        return cls(upstream, timings, exchange)

    async def pieces(self) -> AsyncIterator[Piece]:
        finish: str | None = None
        matched: str | None = None
        try:
            async for line in self.upstream.response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise worker_error(500, chunk)
                for choice in chunk.get("choices") or []:
                    for piece in _choice_pieces(choice):
                        self._mark_first()
                        yield piece
                    finish = choice.get("finish_reason") or finish
                    if isinstance(choice.get("stop_reason"), str):
                        matched = choice["stop_reason"]
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    self._mark_first()
                    self.timings.done = time.perf_counter()
                    prompt = int(usage.get("prompt_tokens") or 0)
                    completion = int(usage.get("completion_tokens") or 0)
                    self.exchange.prompt_tokens = prompt
                    self.exchange.completion_tokens = completion
                    yield Finish(finish or "stop", prompt, completion, matched)
                    return
        except httpx.HTTPError as e:
            error = await lost(self.upstream.lease, e, "stopped mid-stream")
            self.exchange.error = error.code
            raise error from None
        raise WorkerLost(f"the worker for '{self.upstream.lease.slug}' ended without usage")

    async def collect(self) -> Reply:
        """The whole generation (a non-streaming reply); closes the turn."""
        parts: list[Text | ToolCall] = []
        calls: dict[int, ToolCall] = {}
        finish: Finish | None = None
        try:
            async for piece in self.pieces():
                if isinstance(piece, Finish):
                    finish = piece
                elif isinstance(piece, Text):
                    last = parts[-1] if parts else None
                    if isinstance(last, Text) and bool(last.thinking) == bool(piece.thinking):
                        joined = Text(last.content + piece.content, last.thinking + piece.thinking)
                        parts[-1] = joined
                    else:
                        parts.append(piece)
                elif isinstance(piece, ToolStart):
                    calls[piece.index] = ToolCall(piece.index, piece.id, piece.name)
                    parts.append(calls[piece.index])
                else:
                    calls[piece.index].arguments += piece.json
        finally:
            await self.aclose()
        assert finish is not None  # pieces() ends with Finish or raises
        return Reply(parts, finish)

    async def aclose(self) -> None:
        await self.upstream.aclose()

    def _mark_first(self) -> None:
        if self.timings.first is None:
            self.timings.first = time.perf_counter()
            self.exchange.first_byte = self.timings.first


def _choice_pieces(choice: dict[str, Any]) -> list[Piece]:
    delta = choice.get("delta")
    if not isinstance(delta, dict):  # /v1/completions chunks carry `text`
        text = choice.get("text")
        return [Text(content=text)] if text else []
    pieces: list[Piece] = []
    if delta.get("reasoning_content"):
        pieces.append(Text(thinking=delta["reasoning_content"]))
    if delta.get("content"):
        pieces.append(Text(content=delta["content"]))
    for call in delta.get("tool_calls") or []:
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        if call.get("id"):
            pieces.append(ToolStart(index, call["id"], function.get("name") or ""))
        if function.get("arguments"):
            pieces.append(ToolArgs(index, function["arguments"]))
    return pieces


async def _worker_error(response: httpx.Response) -> APIError:
    raw = await response.aread()
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"error": {"message": raw.decode(errors="replace")[:500]}}
    return worker_error(response.status_code, data)


def worker_error(status: int, data: Any) -> APIError:
    """A worker's failed answer (`data`: its decoded body) as the error the client sees."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        failed = status if status >= 400 else 500
        return APIError(failed, f"the worker answered {status}", code="worker_error")
    return APIError(
        status,
        str(error.get("message") or f"the worker answered {status}"),
        param=error.get("param"),
        code=error.get("code"),
    )
