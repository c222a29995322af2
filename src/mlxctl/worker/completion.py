"""One completion: engine events in, OpenAI bodies and stream chunks out.

`Completion.start()` submits the request and waits for the first event, so
`QueueFull` and `ContextOverflow` surface before any byte is sent (a real HTTP
status). `steps()` then yields each `Delta` with its logprobs; leaving it early
(a stop string, a client disconnect) closes the engine's generator, which
cancels the generation. The `chat_*` and `text_*` functions render the result in
the OpenAI shapes, streamed or whole.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from mlxctl.engine.generator import ContextOverflow
from mlxctl.engine.types import DoneEvent, GenerationRequest, TokenEvent
from mlxctl.worker.openai_errors import APIError, invalid_request
from mlxctl.worker.textstream import Delta, OutputStream, ToolCall

Event = TokenEvent | DoneEvent
_POLL_SECONDS = 0.25


@dataclass
class Step:
    delta: Delta
    tokens: list[TokenEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Ident:
    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def new(cls, prefix: str, model: str) -> Ident:
        return cls(f"{prefix}-{secrets.token_hex(12)}", model)


class Completion:
    """Drives one `GenerationRequest` through the engine and an `OutputStream`."""

    def __init__(
        self,
        events: Callable[[GenerationRequest], AsyncIterator[Event]],
        request: GenerationRequest,
        stream: OutputStream,
        *,
        on_end: Callable[[Completion], None] | None = None,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._generate = events
        self._on_end = on_end
        # Polled between tokens for non-streamed replies (streams hear of it from Starlette).
        self._disconnected = disconnected
        self._checked = time.monotonic()
        self.request = request
        self.stream = stream
        self._events: AsyncIterator[Event] | None = None
        self._first: Event | None = None
        self._tokens: list[int] = []
        self.done: DoneEvent | None = None
        self.finish_reason: Literal["stop", "length", "tool_calls"] = "stop"
        self.tool_calls = 0
        self.started = self.finished = False

    async def start(self) -> None:
        """Submit and wait for the first event; engine errors raise here, before any byte."""
        self._events = self._generate(self.request)
        try:
            self._first = await anext(self._events)
        except BaseException as e:
            await self.close()
            if isinstance(e, ValueError) and not isinstance(e, APIError | ContextOverflow):
                raise invalid_request(str(e)) from e  # the engine's own request checks
            raise
        if isinstance(self._first, DoneEvent) and self._first.finish_reason in (
            "error",
            "cancelled",
        ):
            await self.close()
            raise _engine_error(self._first)
        self.started = True

    async def steps(self) -> AsyncIterator[Step]:
        """Each piece of output as it becomes safe to send; the last one closes the stream."""
        assert self._events is not None and self._first is not None, "start() first"
        event: Event | None = self._first
        held = Step(Delta())  # output of the token that completed a stop string
        try:
            while isinstance(event, TokenEvent):
                self._tokens.append(event.token)
                step = Step(self.stream.feed(event.text), [event])
                if self.stream.stopped:
                    # Stopped in text: end the generation by closing the engine's generator.
                    held, event = step, None
                    break
                self._count(step.delta)
                yield step
                await self._check_client()
                event = await self._next()
            if isinstance(event, DoneEvent):
                self.done = event
                if event.finish_reason in ("error", "cancelled"):
                    raise _engine_error(event)
                if event.finish_reason == "length":
                    self.finish_reason = "length"
            hit = self._engine_stop()
            if hit is not None:
                self.stream.matched_stop = hit
            final = Step(_merge(held.delta, self.stream.finish(drop=hit is not None)), held.tokens)
            self._count(final.delta)
            if self.tool_calls and self.finish_reason == "stop":
                self.finish_reason = "tool_calls"
            self.finished = True
            yield final
        finally:
            await self.close()

    @property
    def stop_sequence(self) -> str | None:
        """The stop string that ended the reply (None: EOS, length or tool calls)."""
        return self.stream.matched_stop if self.finish_reason == "stop" else None

    def _engine_stop(self) -> str | None:
        """The stop string whose token sequence the engine stopped on, if it did.

        Then the last token's text was never sent, and held-back text is the
        start of that stop string: it must be dropped, not flushed.
        """
        if self.done is None or self.done.finish_reason != "stop":
            return None
        tail = self._tokens
        for text, ids in zip(self.stream.stop, self.request.stop_token_ids, strict=False):
            if ids and tail[-len(ids) :] == ids:
                return text
        return None

    async def _check_client(self) -> None:
        if self._disconnected is None or time.monotonic() - self._checked < _POLL_SECONDS:
            return
        self._checked = time.monotonic()
        if await self._disconnected():
            raise APIError(499, "The client closed the connection.", code="client_closed")

    async def _next(self) -> Event:
        assert self._events is not None
        try:
            return await anext(self._events)
        except StopAsyncIteration:
            raise APIError(
                500, "The engine ended the generation without a result.", code="engine_error"
            ) from None

    async def close(self) -> None:
        """Close the engine's generator (cancelling an unfinished generation); idempotent."""
        events, self._events = self._events, None
        if events is None:
            return
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            # Runs during a disconnect's cancellation too: the engine must hear of it.
            with anyio.CancelScope(shield=True):
                await aclose()
        if self._on_end is not None:
            self._on_end(self)

    @property
    def completion_tokens(self) -> int:
        return self.done.completion_tokens if self.done else len(self._tokens)

    def _count(self, delta: Delta) -> None:
        self.tool_calls += len(delta.tool_calls)

    def usage(self) -> dict[str, Any]:
        done = self.done
        prompt = done.prompt_tokens if done else len(self.request.prompt_tokens)
        completion = self.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": done.cached_tokens if done else 0},
        }


def _merge(a: Delta, b: Delta) -> Delta:
    return Delta(a.content + b.content, a.reasoning + b.reasoning, a.tool_calls + b.tool_calls)


def _engine_error(done: DoneEvent) -> APIError:
    if done.finish_reason == "cancelled":
        return APIError(503, "The generation was cancelled by the worker.", code="cancelled")
    return APIError(500, f"Generation failed: {done.error or 'unknown error'}", code="engine_error")


# --- OpenAI shapes ------------------------------------------------------------

TokenText = Callable[[int], str]


# OpenAI's logprob for "very unlikely": JSON has no -Infinity (or NaN, which extreme
# sampling values such as repetition_penalty 1e-300 can produce).
UNLIKELY = -9999.0


def finite(logprob: float) -> float:
    return logprob if math.isfinite(logprob) else UNLIKELY


def chat_logprobs(tokens: list[TokenEvent], text: TokenText) -> list[dict[str, Any]]:
    def entry(token: int, logprob: float) -> dict[str, Any]:
        s = text(token)
        return {"token": s, "logprob": finite(logprob), "bytes": list(s.encode("utf-8"))}

    return [
        {
            **entry(t.token, t.logprob if t.logprob is not None else 0.0),
            "top_logprobs": [entry(tok, lp) for tok, lp in t.top_logprobs],
        }
        for t in tokens
    ]


def text_logprobs(tokens: list[TokenEvent], text: TokenText, offset: int) -> dict[str, Any]:
    """The legacy completions shape: parallel lists plus text offsets."""
    strings = [text(t.token) for t in tokens]
    offsets = []
    for s in strings:
        offsets.append(offset)
        offset += len(s)
    return {
        "tokens": strings,
        "token_logprobs": [None if t.logprob is None else finite(t.logprob) for t in tokens],
        "top_logprobs": [{text(tok): finite(lp) for tok, lp in t.top_logprobs} for t in tokens],
        "text_offset": offsets,
    }


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


async def chat_response(run: Completion, ident: Ident, text: TokenText) -> dict[str, Any]:
    content, reasoning, calls, logprobs = "", "", [], []
    try:
        async for step in run.steps():
            content += step.delta.content
            reasoning += step.delta.reasoning
            calls.extend(step.delta.tool_calls)
            logprobs.extend(step.tokens)
    finally:
        await run.close()
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [tool_call_body(c) for c in calls]
    lp = run.request.sampling.logprobs
    choice = {
        "index": 0,
        "message": message,
        "logprobs": {"content": chat_logprobs(logprobs, text), "refusal": None} if lp else None,
        "finish_reason": run.finish_reason,
        **_stop_reason(run),
    }
    return {**_head(ident, "chat.completion"), "choices": [choice], "usage": run.usage()}


async def chat_chunks(
    run: Completion, ident: Ident, text: TokenText, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    """Chat stream chunks: role first, then deltas, the finish chunk, and usage if asked."""
    head = _head(ident, "chat.completion.chunk")
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> dict[str, Any]:
        logprobs = {"content": lp, "refusal": None} if lp else None
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        if finish is not None:
            choice.update(_stop_reason(run))
        return {**head, "choices": [choice], **extra}

    try:
        yield chunk({"role": "assistant", "content": ""})
        pending: list[TokenEvent] = []  # logprobs wait for the text they belong to
        index = 0
        async for step in run.steps():
            d = step.delta
            pending.extend(step.tokens if run.request.sampling.logprobs else [])
            if d.reasoning:
                yield chunk({"reasoning_content": d.reasoning})
            if d.content:
                yield chunk({"content": d.content}, lp=chat_logprobs(pending, text))
                pending = []
            for call in d.tool_calls:
                head_delta = {"index": index, "id": call.id, "type": "function"}
                fn = {"name": call.name, "arguments": ""}
                yield chunk({"tool_calls": [{**head_delta, "function": fn}]})
                args = {"index": index, "function": {"arguments": call.arguments}}
                yield chunk({"tool_calls": [args]})
                index += 1
        yield chunk({}, run.finish_reason, lp=chat_logprobs(pending, text))
        if include_usage:
            yield {**head, "choices": [], "usage": run.usage()}
    finally:
        await run.close()


async def text_response(run: Completion, ident: Ident, text: TokenText) -> dict[str, Any]:
    out, tokens = "", []
    try:
        async for step in run.steps():
            out += step.delta.content
            tokens.extend(step.tokens)
    finally:
        await run.close()
    lp = text_logprobs(tokens, text, 0) if run.request.sampling.logprobs else None
    choice = {"index": 0, "text": out, "logprobs": lp, "finish_reason": run.finish_reason}
    choice.update(_stop_reason(run))
    return {**_head(ident, "text_completion"), "choices": [choice], "usage": run.usage()}


async def text_chunks(
    run: Completion, ident: Ident, text: TokenText, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    head = _head(ident, "text_completion")
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    offset = 0
    try:
        async for step in run.steps():
            lp = text_logprobs(step.tokens, text, offset) if run.request.sampling.logprobs else None
            offset += len(step.delta.content)
            if step.delta.content or lp:
                choice = {"index": 0, "text": step.delta.content, "logprobs": lp}
                yield {**head, "choices": [{**choice, "finish_reason": None}], **extra}
        final = {"index": 0, "text": "", "logprobs": None, "finish_reason": run.finish_reason}
        final.update(_stop_reason(run))
        yield {**head, "choices": [final], **extra}
        if include_usage:
            yield {**head, "choices": [], "usage": run.usage()}
    finally:
        await run.close()


def _stop_reason(run: Completion) -> dict[str, Any]:
    """vLLM's `stop_reason`: which stop string ended the choice (Anthropic reports it)."""
    matched = run.stop_sequence
    return {} if matched is None else {"stop_reason": matched}


def _head(ident: Ident, obj: str) -> dict[str, Any]:
    return {"id": ident.id, "object": obj, "created": ident.created, "model": ident.model}
