"""The engine host: one thread owns the model, fed by a queue; each engine plugs in a backend.

    caller (asyncio)                          engine thread (all model work)
    EngineHost.generate ── submit/cancel ──▶ SimpleQueue ──▶ _Serving.run
         ▲                                                     │ Backend.admit / step
         └── asyncio.Queue ◀── loop.call_soon_threadsafe ── Outbox ◀┘ TokenEvent / DoneEvent

`generate` checks a request in pure Python (context length, sampling values, room in
batch + queue), then hands it to the thread. The thread admits waiting jobs while
fewer than `max_batch` run (the backend may ask one to wait: no room yet), runs one
`Backend.step` for all running jobs, and flushes their events with one wake-up per
event loop. A consumer that stops iterating sends a cancel; the backend drops the
sequence. A failing step ends the running jobs with finish_reason "error" and resets
the backend; the thread carries on. `_call` runs a function on the thread between
steps (embeddings) and hands its result back.

An engine is a subclass that loads its model in `_load` (on the thread) and returns
its `Backend`: mlx-lm (`engine/generator.py`), llama.cpp (`engine/llamacpp.py`) and
BERT encoders (`engine/encoder.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from mlxctl.engine.checks import check_tokens, checked_max_tokens
from mlxctl.engine.outbox import Event, Job, Outbox
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, GenerationRequest, TokenEvent
from mlxctl.errors import NotFound, Unavailable

__all__ = ["Backend", "EngineHost", "QueueFull"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class QueueFull(Unavailable):
    """Batch and queue are full; try again after `retry_after` seconds."""

    status, code = 429, "queue_full"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "The model is busy: its batch and queue are full.",
            hint=f"Retry in {max(1, math.ceil(retry_after))} s, or raise --max-queue.",
            retry_after=retry_after,
        )


@dataclass(eq=False)
class _Call(Generic[T]):
    """A function to run on the engine thread between steps, and its caller's future."""

    fn: Callable[[Any], T]
    what: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


class Backend(Protocol):
    """What an engine runs on the host's thread; the host calls it from that thread only.

    The host owns the queue, the running set (`Outbox.running`), admission counts and
    every DoneEvent; a backend owns its sequences. A backend that generates nothing (an
    encoder) takes no jobs: its engine's `_check` refuses them first. Extra work (an
    embedding, a rerank) goes through `EngineHost._call` as a method of the backend.
    """

    def admit(self, job: Job) -> bool:
        """Start `job` (set `uid`, `cached`), or False: no room yet, it stays first in line.

        Raising ends the job with "could not start"; the host has checked `max_batch`.
        """
        ...

    def step(self) -> None:
        """Advance the running jobs one step: for each new token bump `job.generated`, set
        `job.first_token`, count it in `Outbox.stats` and `Outbox.send` its TokenEvent; drop
        the sequence of a job that ended and `Outbox.finish` it. Raising fails every job."""
        ...

    def cancel(self, job: Job) -> None:
        """Drop a running job's sequence; the host does the accounting."""
        ...

    def reset(self) -> None:
        """After a failed step: drop every sequence (the host has ended their jobs)."""
        ...

    def publish(self, *, force: bool) -> None:
        """Put the readings only this thread may take (memory, caches) into the stats."""
        ...

    def close(self) -> None:
        """Free the model; the thread ends after this."""
        ...


B = TypeVar("B", bound=Backend)
# ("submit" | "cancel", job), ("call", call) or ("stop", None)
_Command = tuple[str, Job | _Call[Any] | None]


class EngineHost(ABC, Generic[B]):
    """Serves one model to many concurrent requests from one engine thread.

    `start()` loads the model on the thread (the subclass's `_load` fills `tokenizer`,
    `context_length`, `eos_token_ids` and `vocab_size`); `close()` stops the thread and
    drops the model. All other methods are safe from any thread; `generate` from any
    event loop.
    """

    thread_name = "mlxctl-engine"

    def __init__(
        self,
        model_path: Path | str,
        *,
        max_batch: int,
        max_queue: int,
        in_flight: int | None = None,
    ) -> None:
        """`in_flight`: requests served at once before `max_queue` more wait (default
        `max_batch`; an engine whose batch counts rows, not requests, says otherwise)."""
        self.model_path = Path(model_path)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.tokenizer: Any = None
        self.context_length = 0
        self.eos_token_ids: set[int] = set()
        self.vocab_size = 0
        self._stats = EngineStats(max_batch=in_flight or max_batch, max_queue=max_queue)
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        # Guards `_running` with the enqueue, so no submit lands after shutdown drained.
        self._gate = threading.Lock()
        self._running = False

    # --- what an engine provides ---------------------------------------------------

    def _prepare(self) -> None:
        """Check the model's files before the thread starts (NotFound: no model folder)."""
        if not self.model_path.is_dir():
            raise NotFound(f"Model directory {self.model_path} not found.")

    @abstractmethod
    def _load(self, outbox: Outbox) -> B:
        """Load the model on the engine thread; the backend that serves it."""

    def _check(self, request: GenerationRequest) -> int:
        """Check a request before it is queued; its max_tokens, clamped to the context."""
        return checked_max_tokens(request, self.context_length, self.vocab_size)

    def _thread_exit(self) -> None:
        """Last words of the engine thread (after `Backend.close`, or a failed load)."""

    # --- the public face -----------------------------------------------------------

    def start(self) -> None:
        """Load the model on the engine thread; block until ready or raise."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__}.start() was already called")
        self._prepare()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error
        self._running = True

    def close(self) -> None:
        """Stop the thread; requests still running end with finish_reason "error"."""
        if self._thread is None or not self._thread.is_alive():
            return
        self._commands.put(("stop", None))
        self._thread.join()

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of counters; never calls into the model."""
        return self._stats.snapshot()

    async def generate(
        self, request: GenerationRequest
    ) -> AsyncGenerator[TokenEvent | DoneEvent, None]:
        """Yield a TokenEvent per generated token, then exactly one DoneEvent.

        Raises before the first event: ValueError (bad request), ContextOverflow
        (prompt >= context_length), QueueFull. `max_tokens` is clamped so prompt
        plus reply fit the context; the clamp ends with finish_reason "length".
        A finish_reason "stop" means the last TokenEvent was the stop token: its
        own text is not decoded (its `text` carries only held-back text). Texts
        add up to `tokenizer.decode(tokens)` (less that stop token).
        Closing the iterator early cancels the sequence.
        """
        job = self._submit(request)
        done = False
        try:
            while True:
                event = await job.events.get()
                done = isinstance(event, DoneEvent)
                yield event
                if done:
                    return
        finally:
            if not done:
                job.cancelled = True  # read by the thread between tokens
                self._commands.put(("cancel", job))

    async def _embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        """The backend's `embed(token_lists)` on the thread between steps, counted.

        Raises ValueError for empty inputs, inputs over the context or unknown ids, and
        QueueFull when the engine is full: an embedding takes a place like a request.
        """
        check_tokens(token_lists, context_length=self.context_length, vocab_size=self.vocab_size)
        stats = self._stats

        def embed(backend: Any) -> list[list[float]]:
            vectors: list[list[float]] = backend.embed(token_lists)
            stats.add_embedding(inputs=len(token_lists), tokens=sum(map(len, token_lists)))
            return vectors

        if not stats.admit():
            raise QueueFull(stats.retry_after())
        started = time.perf_counter()
        try:
            return await self._call(embed, "embedding")
        finally:
            stats.release(seconds=time.perf_counter() - started)

    async def _call(self, fn: Callable[[B], T], what: str) -> T:
        """`fn(backend)` on the engine thread between steps; its result or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        call = _Call(fn, what, loop, future)
        with self._gate:
            if not self._running:
                raise Unavailable("The engine is not running.", hint="Start it first.")
            self._commands.put(("call", call))
        return await call.future

    def _submit(self, request: GenerationRequest) -> Job:
        if not self._running:
            raise Unavailable("The engine is not running.", hint="Start it first.")
        max_tokens = self._check(request)
        if not self._stats.admit():
            raise QueueFull(self._stats.retry_after())
        job = Job(
            request=request,
            loop=asyncio.get_running_loop(),
            events=asyncio.Queue(),
            max_tokens=max_tokens,
        )
        with self._gate:
            if not self._running:
                self._stats.release()
                raise Unavailable("The engine is not running.", hint="Start it first.")
            self._commands.put(("submit", job))
        return job

    def _run(self) -> None:
        outbox = Outbox(self._stats)
        try:
            backend = self._load(outbox)
        except BaseException as exc:
            self._load_error = exc
            self._ready.set()
            self._thread_exit()
            return
        self._ready.set()
        _Serving(self, backend, outbox).run()
        del backend
        self._thread_exit()


class _Serving:
    """The engine thread's loop: commands in, jobs admitted and stepped, events out."""

    def __init__(self, host: EngineHost[Any], backend: Backend, outbox: Outbox) -> None:
        self.host = host
        self.backend = backend
        self.out = outbox
        self.stats = host._stats
        self.commands = host._commands
        self.waiting: deque[Job] = deque()

    def run(self) -> None:
        """Serve commands until told to stop; no exception ends the loop early."""
        try:
            while True:
                try:
                    if not self._take(block=not self.out.running and not self.waiting):
                        return
                    self._admit()
                    if self.out.running:
                        self.backend.step()
                except Exception as exc:
                    # The step may be half done: end its jobs, let the backend start afresh.
                    log.exception("generation step failed")
                    self._fail_running(f"generation failed: {exc!r}")
                finally:
                    self._flush()
                self.backend.publish(force=not self.out.running)
        finally:
            self._shutdown()

    def _take(self, *, block: bool) -> bool:
        """Apply queued commands; False once told to stop."""
        try:
            command = self.commands.get(block=block)
            while True:
                kind, item = command
                if kind == "stop":
                    return False
                if isinstance(item, _Call):
                    self._serve_call(item)
                elif item is None:
                    raise AssertionError(f"command {kind!r} without a job")
                elif kind == "submit":
                    self.waiting.append(item)
                else:
                    self._cancel(item)
                command = self.commands.get_nowait()
        except queue.Empty:
            return True

    def _serve_call(self, call: _Call[Any]) -> None:
        try:
            result = call.fn(self.backend)
        except Exception as exc:
            log.exception("%s failed", call.what)
            self.stats.add_error()
            _settle(call, exc)
            return
        _settle(call, result)

    def _admit(self) -> None:
        admitted = False
        while self.waiting and len(self.out.running) < self.host.max_batch:
            job = self.waiting[0]
            if job.cancelled:  # its cancel is on the way: never start it
                self.waiting.popleft()
                self.out.retire(job, cancelled=True)
                continue
            try:
                if not self.backend.admit(job):
                    break  # no room yet: a running job must end or move on first
            except Exception as exc:
                self.waiting.popleft()
                log.exception("could not start a request")
                self.out.finish(job, "error", error=f"could not start: {exc!r}")
                continue
            self.waiting.popleft()
            self.out.running[job] = None
            self.stats.add_tokens(prompt=len(job.request.prompt_tokens), cached=job.cached)
            admitted = True
        if admitted:
            self.stats.set_active(len(self.out.running))
            self.backend.publish(force=True)

    def _cancel(self, job: Job) -> None:
        if job.finished:
            return
        if job in self.out.running:
            self.backend.cancel(job)
        elif job in self.waiting:
            self.waiting.remove(job)
        self.out.retire(job, cancelled=True)

    def _fail_running(self, message: str) -> None:
        for job in list(self.out.running):
            self.out.finish(job, "error", error=message)
        self.backend.reset()

    def _flush(self) -> None:
        """Deliver the held events, one wake-up per event loop."""
        if self.out.finished:
            self.out.finished = False
            self.backend.publish(force=True)
        for loop, events in self.out.take():
            try:
                loop.call_soon_threadsafe(_put_all, events)
            except RuntimeError:
                # The caller's loop is closed: nobody will read; drop its sequences.
                for job, _ in events:
                    self._cancel(job)

    def _shutdown(self) -> None:
        with self.host._gate:
            self.host._running = False
        # Commands still queued behind the stop.
        while True:
            try:
                kind, item = self.commands.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Call):
                _settle(item, Unavailable("The engine was closed."))
            elif kind == "submit" and item is not None:
                self.waiting.append(item)
            elif kind == "cancel" and item is not None:
                self._cancel(item)
        for job in [*self.out.running, *self.waiting]:
            self.out.finish(job, "error", error="the engine was closed")
        self.waiting.clear()
        self._flush()
        self.backend.close()


def _put_all(events: list[tuple[Job, Event]]) -> None:
    for job, event in events:
        job.events.put_nowait(event)


def _settle(call: _Call[Any], outcome: object) -> None:
    """Hand the result (or the exception) to the caller's loop; called on the engine thread."""

    def apply() -> None:
        if call.future.done():  # the caller left
            return
        if isinstance(outcome, BaseException):
            call.future.set_exception(outcome)
        else:
            call.future.set_result(outcome)

    # A closed loop means the caller is gone: nobody is waiting.
    with contextlib.suppress(RuntimeError):
        call.loop.call_soon_threadsafe(apply)
