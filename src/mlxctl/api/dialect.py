"""The skeleton every dialect's handler shares: one opening, two ways to answer.

A dialect is its envelope (`Dialect`: errors before and after the first byte, the
stream's media type, the 400 for fields it does not take). Its handlers read the
same way:

    @OLLAMA.handler(fields=_CHAT_FIELDS)   the body read, its fields checked; what the
    async def chat(incoming: Incoming):    handler raises is answered in the envelope
        record = incoming.resolve()        `model` → the registry (404 with close matches)
        keep_alive = incoming.keep_alive() absent or null: the default
        turn = await incoming.turn(record, "/v1/chat/completions", openai, keep_alive)
        return OLLAMA.streamed(turn, chunks) or OLLAMA.collected(turn, render)

`collected` generates while it is sent (`Turn.collect`), `streamed` ends a stream
that failed after its first byte with the dialect's final error chunk; both close
the turn, releasing the lease. The request's `Exchange` (model, tokens, error) is
the access log's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mlxctl.api.body import keep_alive_field, model_field
from mlxctl.api.errors import APIError
from mlxctl.api.turn import Reply, Timings, Turn
from mlxctl.httpguard import json_object
from mlxctl.peers import Elsewhere, Peers
from mlxctl.registry import ModelRecord
from mlxctl.router import Exchange, Router
from mlxctl.scheduler import DEFAULT, KeepAlive

Envelope = Callable[[BaseException], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def exchange_of(request: Request) -> Exchange:
    """The request's Exchange, created by the access-log middleware (or here)."""
    exchange = getattr(request.state, "exchange", None)
    if not isinstance(exchange, Exchange):
        exchange = Exchange()
        request.state.exchange = exchange
    return exchange


@dataclass
class Incoming:
    """One dialect request being opened: its body as sent and read, its exchange, its clock."""

    request: Request
    exchange: Exchange
    timings: Timings
    raw: bytes
    body: dict[str, Any]

    @property
    def router(self) -> Router:
        router: Router = self.request.app.state.router
        return router

    def unknown(self, allowed: Collection[str]) -> str:
        """The body's fields outside `allowed`, sorted and comma-separated ("" if none)."""
        return ", ".join(sorted(set(self.body) - set(allowed)))

    def resolve(self) -> ModelRecord:
        """The local model for the body's `model`; raises `Elsewhere` when a peer daemon
        should answer (docs/scale-out.md), which the handler forwards."""
        name = model_field(self.body)
        peers: Peers | None = getattr(self.request.app.state, "peers", None)
        if peers is None:
            record = self.router.resolve(name)
        else:
            record = peers.place(name, self.body, self.router, self.request.headers)
        self.exchange.model = record.slug
        return record

    def keep_alive(self) -> KeepAlive:
        value = self.body.get("keep_alive")
        return DEFAULT if value is None else keep_alive_field(value)

    async def turn(
        self, record: ModelRecord, path: str, openai: dict[str, Any], keep_alive: KeepAlive
    ) -> Turn:
        """Open `openai` (an OpenAI body) on the model's worker; the last step that may fail."""
        return await Turn.open(
            self.router, record, path, openai, keep_alive, self.exchange, self.timings
        )


Handler = Callable[[Incoming], Awaitable[Response]]


def _extra_fields(route: str, names: str) -> Exception:
    return APIError(400, f"{route} does not take the field(s) {names}", code="invalid_value")


@dataclass
class Dialect:
    """One API dialect's envelope; also the router's `Dialect` (its errors)."""

    name: str
    error_response: Envelope  # an error before the first byte
    stream_error: Callable[[BaseException], bytes]  # the last chunk of a failed stream
    media_type: str  # of its streams
    extra_fields: Callable[[str, str], Exception] = _extra_fields  # (route, "a, b") → a 400

    def handler(self, fields: Collection[str] | None = None) -> Callable[[Handler], Endpoint]:
        """A route endpoint around `fn(incoming)`: the body read (and refused when it has
        fields beyond `fields`); whatever it raises answered in the envelope and named in
        the access log."""

        def wrap(fn: Handler) -> Endpoint:
            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                timings = Timings(time.perf_counter())
                exchange = exchange_of(request)
                try:
                    raw = await request.body()
                    incoming = Incoming(request, exchange, timings, raw, json_object(raw))
                    if fields is not None and (unknown := incoming.unknown(fields)):
                        raise self.extra_fields(request.url.path, unknown)
                    try:
                        return await fn(incoming)
                    except Elsewhere as away:  # the body as sent: fn may have changed it
                        body = json_object(raw)
                        return await away.peers.forward(
                            away, request, body, self, exchange, incoming.router
                        )
                except Exception as e:
                    exchange.error = type(e).__name__
                    return self.error_response(e)

            return endpoint

        return wrap

    def streamed(self, turn: Turn, chunks: AsyncGenerator[bytes, None]) -> StreamingResponse:
        """`chunks` as they come; a failure after the first byte ends with `stream_error`."""

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in chunks:
                    yield chunk
            except Exception as e:
                turn.exchange.error = type(e).__name__
                yield self.stream_error(e)
            finally:
                await chunks.aclose()
                await turn.aclose()

        return StreamingResponse(body(), media_type=self.media_type)

    def collected(self, turn: Turn, render: Callable[[Reply], dict[str, Any]]) -> Response:
        """The non-streaming reply: `render` of the whole generation."""
        return Collected(turn, render, self.error_response)


class Collected(Response):
    """The non-streaming reply: the whole generation, gathered while it is sent and
    rendered by `render` (or the failure, in `envelope`)."""

    def __init__(
        self, turn: Turn, render: Callable[[Reply], dict[str, Any]], envelope: Envelope
    ) -> None:
        super().__init__(media_type="application/json")
        self.turn, self.shape, self.envelope = turn, render, envelope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        try:
            response = JSONResponse(self.shape(await self.turn.collect()))
        except Exception as e:
            self.turn.exchange.error = type(e).__name__
            response = self.envelope(e)
        await response(scope, receive, send)
