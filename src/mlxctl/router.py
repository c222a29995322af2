"""The router: a request's `model` → a ready worker → the worker's bytes, back to the client.

`resolve` turns what the client typed (slug, repo id, routing alias, slot alias,
unambiguous prefix) into a registered model: the one door every dialect uses.
`forward` leases a worker from the scheduler and proxies one request to it with httpx
streaming. The lease (the worker's ref count) is held until the last byte has gone out.
Bytes pass through untouched; a client that disconnects closes the upstream stream (the
worker then cancels the generation); a worker that dies mid-stream ends the stream with
the dialect's error event.

Slow is not dead: a worker gets `first_byte` seconds to start answering (a long
prompt's prefill, or a whole non-streamed answer) and `idle` seconds between two
chunks of a stream; past either the request ends with `WorkerTimeout`. A worker that
is dead or hung is found sooner by the supervisor's liveness check, which kills it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mlxctl.backend import model_target
from mlxctl.errors import InvalidInput, MlxctlError, NotFound
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.resolve import resolve_exact, resolve_reference
from mlxctl.scheduler import DEFAULT, KeepAlive, Lease, Scheduler, WorkerLost, WorkerTimeout
from mlxctl.settings import Settings
from mlxctl.sharding import limits
from mlxctl.worker.requests import with_defaults

if TYPE_CHECKING:
    from mlxctl.config.live import LiveConfig

# Response headers that describe one hop, not the body: never passed on (the request id
# too: the worker echoes the daemon's, which the daemon's middleware sets itself).
_HOP_HEADERS = {
    *("connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"),
    "x-request-id",
}
# How much of a response the usage tap keeps to find `usage` at the end.
_TAIL_BYTES = 16384
_BODY_BYTES = 1 << 20
# The worker paths that sample, where config.yaml's sampling defaults apply.
_SAMPLED = frozenset({"/v1/chat/completions", "/v1/completions"})
# How long a stream that ended without `[DONE]` waits to learn whether its server died.
_END_GRACE = 3.0


class Dialect(Protocol):
    """How one API dialect reports errors before and after the first byte."""

    name: str

    def error_response(self, exc: BaseException) -> Response: ...

    def stream_error(self, exc: BaseException) -> bytes: ...


@dataclass
class Exchange:
    """What the access log and metrics learn about one proxied request."""

    request_id: str | None = None
    model: str | None = None
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None  # perf_counter at the first body byte (≈ first token)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_byte is None else self.first_byte - self.started


@dataclass(frozen=True)
class Call:
    """One request to pass to a worker."""

    record: ModelRecord
    path: str
    body: bytes
    keep_alive: KeepAlive = DEFAULT
    request_id: str | None = None


@dataclass(frozen=True)
class Timeouts:
    """How long a worker may stay silent: before its first byte, and between chunks."""

    first_byte: float = 600.0
    idle: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        return cls(settings.worker_first_byte_timeout, settings.worker_idle_timeout)


class Router:
    def __init__(
        self,
        registry: Registry,
        scheduler: Scheduler,
        http: httpx.AsyncClient,
        timeouts: Timeouts | None = None,
        aliases: Callable[[str], str | None] | None = None,
        config: LiveConfig | None = None,
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.http = http
        self.timeouts = timeouts or Timeouts()
        self.aliases = aliases  # slot alias → the slug of the model on that slot
        self.config = config  # routing and pattern aliases, request defaults (config.yaml)

    def resolve(self, reference: str, *, mapped: bool = False) -> ModelRecord:
        """The registered model: its exact name, else the model a routing alias picks now
        (config.yaml `aliases:`), else the model on the slot of that alias, else an
        unambiguous prefix, else the model a pattern alias (or MLXCTL_MODEL_MAP) sends the
        name to, unless `mapped`. NotFound names the closest names (a fresh read)."""
        records = self.registry.list()
        try:
            return resolve_exact(reference, records)
        except NotFound:
            pass
        routed = self.config.route(reference.strip(), records) if self.config else None
        if routed is not None:
            return routed
        slug = self.aliases(reference) if self.aliases is not None else None
        on_slot = next((r for r in records if r.slug == slug), None)
        try:
            return on_slot or resolve_reference(reference, records)
        except NotFound:
            if mapped or self.config is None:
                raise
            target = self.config.route_pattern(reference.strip(), records)
            if target is None:
                raise
            return target

    def config_defaults(self, record: ModelRecord, preset: str | None) -> dict[str, Any]:
        """Sampling defaults for `record` from config.yaml, a request's `preset` over them."""
        return self.config.sampling(record, preset) if self.config is not None else {}

    def _with_config(self, call: Call) -> Call:
        """`call` with config.yaml's sampling defaults (and a request's `preset`) applied."""
        body = call.body
        configured = self.config is not None and (
            self.config.config is not None or b'"preset"' in body
        )
        if not configured or call.path not in _SAMPLED:
            return call
        defaults = _sampled(body, lambda preset: self.config_defaults(call.record, preset))
        return replace(call, body=defaults)

    async def forward(self, call: Call, dialect: Dialect, exchange: Exchange) -> Response:
        """Lease a worker and proxy `call` to it; errors before the first byte are responses."""
        exchange.model = call.record.slug
        try:
            lease, upstream, _ = await self._open(call)
        except Exception as e:
            exchange.error = type(e).__name__
            return dialect.error_response(e)

        async def broke(error: httpx.HTTPError) -> MlxctlError:
            return await lost(lease, error, "stopped mid-stream")

        async def cut_short() -> MlxctlError | None:
            """An SSE end without `[DONE]`, the server gone within `_END_GRACE` s."""
            if await _exited(lease, _END_GRACE):
                return WorkerLost(_lost(lease, "stopped mid-stream"))
            return None

        # An external server may just close a stream when it dies (mlx_lm.server does).
        watch_end = call.path in _SAMPLED and lease.worker.external
        return ProxyResponse(
            upstream,
            dialect,
            exchange,
            release=lease.release,
            lost=broke,
            cut_short=cut_short if watch_end else None,
        )

    async def open(self, call: Call) -> Upstream:
        """For translating dialects: lease a worker and send `call`; the caller reads the
        response and must `aclose()` it. Raises what `forward` would answer as an error."""
        lease, response, load_seconds = await self._open(call)
        return Upstream(lease, response, load_seconds)

    async def _open(self, call: Call) -> tuple[Lease, httpx.Response, float]:
        call = self._with_config(call)  # before the lease: a bad preset costs no load
        if self.scheduler.options.for_model(call.record).shard is not None:
            limits.check_request(call.record.slug, call.body)  # before a load, not after
        for attempt in (1, 2):
            asked = time.perf_counter()
            lease = await self.scheduler.acquire(call.record, call.keep_alive)
            acquired = time.perf_counter() - asked
            try:
                return lease, await self._send(lease, call), acquired
            except httpx.ConnectError:
                lease.release()
                # The worker died between grant and connect: once the scheduler has seen
                # the exit, a second lease starts a fresh worker.
                if attempt == 2 or not await _exited(lease, 2.0):
                    raise WorkerLost(_lost(lease, "could not be reached")) from None
                await asyncio.sleep(0)
            except httpx.HTTPError:
                lease.release()
                await _exited(lease, 0.5)
                raise WorkerLost(_lost(lease, "stopped before answering")) from None
            except BaseException:
                lease.release()
                raise
        raise AssertionError("unreachable")

    async def _send(self, lease: Lease, call: Call) -> httpx.Response:
        headers = {"content-type": "application/json", "accept": "*/*", **lease.worker.headers}
        if call.request_id:
            headers["x-request-id"] = call.request_id
        body = call.body
        if lease.worker.external:
            body = _with_model(body, model_target(call.record))
        request = self.http.build_request(
            "POST", lease.base_url + call.path, content=body, headers=headers
        )
        limit = self.timeouts.first_byte
        try:
            async with asyncio.timeout(limit):
                response = await self.http.send(request, stream=True)
        except TimeoutError:
            raise WorkerTimeout(
                f"the worker for '{lease.slug}' did not start answering within {limit:g} s "
                "(MLXCTL_WORKER_FIRST_BYTE_TIMEOUT)"
            ) from None
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = IdleLimit(response.stream, self.timeouts.idle, lease.slug)
        return response


class StreamIdle(httpx.ReadTimeout):
    """A worker's response went silent for longer than the idle timeout."""


class IdleLimit(httpx.AsyncByteStream):
    """A worker's response body that fails with `StreamIdle` after `idle` silent seconds."""

    def __init__(self, inner: httpx.AsyncByteStream, idle: float, slug: str) -> None:
        self._inner = inner
        self._idle = idle
        self._slug = slug

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise StreamIdle(
                    f"the worker for '{self._slug}' sent nothing for {self._idle:g} s "
                    "mid-answer (MLXCTL_WORKER_IDLE_TIMEOUT)"
                ) from None
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


async def lost(lease: Lease, error: httpx.HTTPError, what: str) -> WorkerLost:
    """What a client hears when its worker's response broke off (`what` happened)."""
    if isinstance(error, StreamIdle):
        return WorkerTimeout(str(error))
    await _exited(lease, 0.5)
    return WorkerLost(_lost(lease, what))


@dataclass
class Upstream:
    """An open worker response and its lease (see `Router.open`).

    `load_seconds` is how long the lease took: the model's load, or ~0 when it was ready.
    """

    lease: Lease
    response: httpx.Response
    load_seconds: float

    async def aclose(self) -> None:
        try:
            await self.response.aclose()
        finally:
            self.lease.release()


class ProxyResponse(Response):
    """Streams an upstream response (a worker's, or a peer daemon's) to the client; owns
    the upstream and always calls `release` (a worker's lease) when done.

    Runs the copy loop and a disconnect listener together: whichever ends first
    cancels the other, then the upstream stream is closed and `release` called. An
    upstream that breaks off mid-body is named by `lost` (the error the client hears).
    """

    def __init__(
        self,
        upstream: httpx.Response,
        dialect: Dialect,
        exchange: Exchange,
        *,
        release: Callable[[], None],
        lost: Callable[[httpx.HTTPError], Awaitable[MlxctlError]],
        cut_short: Callable[[], Awaitable[MlxctlError | None]] | None = None,
    ) -> None:
        self.upstream = upstream
        self.release = release
        self.lost = lost
        self.cut_short = cut_short  # an SSE end without `[DONE]` may be the server dying
        self.dialect = dialect
        self.exchange = exchange
        self.status_code = upstream.status_code
        self.background = None
        kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS]
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept]
        content_type = upstream.headers.get("content-type", "")
        self.is_sse = content_type.startswith("text/event-stream")
        self.tap = UsageTap(keep_all=not self.is_sse)
        self.complete = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not self.complete:
                        self.exchange.error = self.exchange.error or "client_disconnected"
                    tg.cancel_scope.cancel()

                tg.start_soon(until_disconnect)
                await self._copy(send)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            self.release()
            self.tap.finish(self.exchange)

    async def _copy(self, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            try:
                async for chunk in self.upstream.aiter_raw():
                    if self.exchange.first_byte is None:
                        self.exchange.first_byte = time.perf_counter()
                    self.tap.feed(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as e:
                await self._worker_lost(send, e)
            else:
                await self._check_end(send)
            self.complete = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # servers that raise on a send to a closed connection
            self.exchange.error = self.exchange.error or "client_disconnected"

    async def _worker_lost(self, send: Send, cause: httpx.HTTPError) -> None:
        """The upstream died or went silent mid-body: SSE gets a final error event; JSON
        just ends short."""
        error = await self.lost(cause)
        await self._send_error(send, error)

    async def _check_end(self, send: Send) -> None:
        """A stream that closed without `data: [DONE]` may have been cut short by its
        server's death: `cut_short` names the error, if so."""
        if self.cut_short is None or not self.is_sse or b"data: [DONE]" in self.tap.buffer:
            return
        error = await self.cut_short()
        if error is not None:
            await self._send_error(send, error)

    async def _send_error(self, send: Send, error: MlxctlError) -> None:
        self.exchange.error = error.code
        if not self.is_sse:
            return
        body = self.dialect.stream_error(error)
        await send({"type": "http.response.body", "body": body, "more_body": True})


class UsageTap:
    """Finds `usage` in the bytes going by (the last SSE events, or the JSON body)."""

    def __init__(self, *, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.buffer = bytearray()
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if self.keep_all:
            if len(self.buffer) > _BODY_BYTES:
                self.keep_all = False
            return
        self.events += chunk.count(b"data: ")
        if len(self.buffer) > _TAIL_BYTES:
            del self.buffer[: len(self.buffer) - _TAIL_BYTES]

    def finish(self, exchange: Exchange) -> None:
        usage = self._usage()
        if usage:
            exchange.prompt_tokens = _int(usage.get("prompt_tokens"))
            exchange.completion_tokens = _int(usage.get("completion_tokens"))

    def _usage(self) -> dict[str, Any] | None:
        if self.keep_all:
            return _usage_of(bytes(self.buffer))
        for line in reversed(bytes(self.buffer).split(b"\n")):
            if line.startswith(b"data: {") and b'"usage"' in line:
                usage = _usage_of(line[6:])
                if usage:
                    return usage
        return None


def _usage_of(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _exited(lease: Lease, timeout: float) -> bool:
    """Wait up to `timeout` for the leased worker to be gone; True if it is."""
    try:
        await asyncio.wait_for(lease.worker.wait_exit(), timeout)
    except TimeoutError:
        return False
    return True


def _lost(lease: Lease, what: str) -> str:
    detail = lease.worker.exit_message() if lease.worker.returncode is not None else None
    message = f"the worker for '{lease.slug}' {what}"
    return f"{message}: {detail}" if detail else message


def _sampled(body: bytes, defaults: Callable[[str | None], dict[str, Any]]) -> bytes:
    """The body with config.yaml's sampling defaults where it sets none; a `preset` field
    (a config preset's sampling) is taken out. Raises NotFound for an unknown preset."""
    data = _object(body)
    if data is None:
        return body
    named = "preset" in data  # `"preset": null` too: the worker does not take the field
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise InvalidInput("'preset' must be the name of a config.yaml preset")
    values = defaults(preset)
    if not values and not named:
        return body
    return json.dumps(with_defaults(data, values)).encode()


def _with_model(body: bytes, model: str) -> bytes:
    """The body with `model` set to what an external server knows its model by."""
    data = _object(body)
    return body if data is None else json.dumps({**data, "model": model}).encode()


def _object(body: bytes) -> dict[str, Any] | None:
    """A JSON object body, parsed; None for anything else (the worker answers that)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
