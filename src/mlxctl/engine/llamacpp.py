"""A GGUF engine on llama.cpp with the same face as `engine.generator.Engine`.

    caller (asyncio)                          generation thread (all llama.cpp work)
    LlamaCppEngine.generate ── submit/cancel ──▶ SimpleQueue ──▶ _Loop.run
         ▲                                                  │ eval, sample (numpy)
         └── asyncio.Queue ◀── loop.call_soon_threadsafe ───┘ TokenEvent / DoneEvent

One `llama_cpp.Llama` decodes one sequence at a time; other requests wait in the queue
(bounded: `QueueFull` beyond it). llama.cpp keeps the KV of the last sequence, so each
prompt reuses its longest common prefix with it. Sampling runs per request in numpy
(`npsampler`) on the raw logits, so seeds, penalties, logit bias and the worker's
logits processors (structured output) behave as with the MLX engine.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlxctl.engine import sampling
from mlxctl.engine.generator import ContextOverflow, QueueFull
from mlxctl.engine.npsampler import NumpySampler, Row, RowProcessor
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, FinishReason, GenerationRequest, TokenEvent
from mlxctl.errors import NotFound, Unavailable

__all__ = ["ContextOverflow", "LlamaCppEngine", "QueueFull", "find_gguf"]

log = logging.getLogger(__name__)

Event = TokenEvent | DoneEvent
# Without a setting, the context is the model's, capped: llama.cpp allocates all of it.
DEFAULT_MAX_CONTEXT = 8192


def find_gguf(path: Path, gguf_file: str | None = None) -> Path:
    """The GGUF file to load: `path` itself, `path/gguf_file`, or the folder's first one."""
    from mlxctl.store.ggufinfo import pick_gguf

    path = Path(path)
    if path.is_file():
        return path
    if gguf_file:
        chosen = path / gguf_file
        if not chosen.is_file():
            raise NotFound(f"GGUF file {chosen} not found.")
        return chosen
    files = sorted(path.glob("*.gguf"))
    if not files:
        raise NotFound(f"No .gguf file in {path}.")
    return pick_gguf(files)


@dataclass(eq=False)
class _Job:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event]
    max_tokens: int
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    finished: bool = False


class LlamaCppEngine:
    """Serves one GGUF model, one sequence at a time, through llama-cpp-python.

    `start()` loads on the generation thread and fills `tokenizer`, `context_length`,
    `eos_token_ids` and `vocab_size`; `close()` stops it. `generate` may be called
    from any event loop; closing its iterator cancels the request.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        gguf_file: str | None = None,
        max_queue: int = 64,
        context_length: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = -1,
        n_batch: int = 512,
    ) -> None:
        if max_queue < 0 or n_batch < 1:
            raise ValueError("max_queue must be >= 0 and n_batch >= 1")
        self.model_path = Path(model_path)
        self.gguf_file = gguf_file
        self.max_queue = max_queue
        self.requested_context = context_length
        self.n_threads = n_threads or usable_cpus()
        self.n_gpu_layers = n_gpu_layers
        self.n_batch = n_batch
        self.tokenizer: Any = None
        self.context_length = 0
        self.eos_token_ids: set[int] = set()
        self.vocab_size = 0
        self._stats = EngineStats(max_batch=1, max_queue=max_queue)
        self._commands: queue.SimpleQueue[tuple[str, _Job | None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._gate = threading.Lock()
        self._running = False

    def start(self) -> None:
        """Load the GGUF on the generation thread; block until ready or raise."""
        if self._thread is not None:
            raise RuntimeError("LlamaCppEngine.start() was already called")
        self.file = find_gguf(self.model_path, self.gguf_file)
        self._thread = threading.Thread(target=self._run, name="mlxctl-llamacpp", daemon=True)
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
        return {**self._stats.snapshot(), "engine": "llama.cpp"}

    async def generate(
        self, request: GenerationRequest
    ) -> AsyncGenerator[TokenEvent | DoneEvent, None]:
        """TokenEvents then one DoneEvent, with `Engine.generate`'s contract."""
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

    def _submit(self, request: GenerationRequest) -> _Job:
        if not self._running:
            raise Unavailable("The engine is not running.", hint="Start it first.")
        prompt = request.prompt_tokens
        if not prompt:
            raise ValueError("The prompt has no tokens.")
        if len(prompt) >= self.context_length:
            raise ContextOverflow(len(prompt), self.context_length)
        if request.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, not {request.max_tokens}")
        if min(prompt) < 0 or max(prompt) >= self.vocab_size:
            raise ValueError(f"Prompt token ids must be in [0, {self.vocab_size}).")
        sampling.validate(request.sampling, self.vocab_size)
        if not self._stats.admit():
            raise QueueFull(self._stats.retry_after())
        job = _Job(
            request=request,
            loop=asyncio.get_running_loop(),
            events=asyncio.Queue(),
            max_tokens=min(request.max_tokens, self.context_length - len(prompt)),
        )
        with self._gate:
            if not self._running:
                self._stats.release()
                raise Unavailable("The engine is not running.", hint="Start it first.")
            self._commands.put(("submit", job))
        return job

    def _run(self) -> None:
        try:
            loop = self._load()
        except BaseException as exc:
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run()

    def _load(self) -> _Loop:
        import llama_cpp

        from mlxctl.engine.gguftokenizer import load_gguf_tokenizer

        n_ctx = self.requested_context or min(_trained_context(self.file), DEFAULT_MAX_CONTEXT)
        llm = llama_cpp.Llama(
            str(self.file),
            n_ctx=n_ctx,
            n_batch=min(self.n_batch, n_ctx),
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_gpu_layers=self.n_gpu_layers,
            logits_all=False,
            verbose=False,
        )
        self.tokenizer = load_gguf_tokenizer(
            self.model_path if self.model_path.is_dir() else self.file.parent, llm
        )
        self.context_length = int(llm.n_ctx())
        self.vocab_size = int(llm.n_vocab())
        eos = {int(t) for t in self.tokenizer.eos_token_ids}
        if int(llm.token_eos()) >= 0:
            eos.add(int(llm.token_eos()))
        self.eos_token_ids = eos
        return _Loop(self, llm)


class _Loop:
    """The generation thread's state: the model, the waiting jobs, the one running."""

    def __init__(self, engine: LlamaCppEngine, llm: Any) -> None:
        import llama_cpp

        self.engine = engine
        self.llm = llm
        self.stats = engine._stats
        self.waiting: deque[_Job] = deque()
        self.stopping = False
        n_vocab = engine.vocab_size
        ctx = llm._ctx.ctx

        def last_logits() -> Row:
            pointer = llama_cpp.llama_get_logits_ith(ctx, -1)
            row: Row = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
            return row

        self.last_logits = last_logits

    def run(self) -> None:
        while not self.stopping:
            if not self.waiting:
                self._take(block=True)
                continue
            job = self.waiting.popleft()
            if job.cancelled:
                self._retire(job, cancelled=True)
                continue
            try:
                self._generate(job)
            except Exception as exc:
                log.exception("generation failed")
                self.llm.reset()  # the KV may be half-written: forget it
                if not job.finished:
                    self._finish(job, "error", error=f"{type(exc).__name__}: {exc}")
        self._shutdown()

    def _take(self, *, block: bool) -> None:
        """Apply queued commands: submits join `waiting`, cancels mark their job."""
        while True:
            try:
                kind, job = self.engine._commands.get(block=block)
            except queue.Empty:
                return
            block = False
            if kind == "stop":
                self.stopping = True
            elif kind == "submit" and job is not None:
                self.waiting.append(job)
            elif kind == "cancel" and job is not None and job in self.waiting:
                self.waiting.remove(job)
                self._retire(job, cancelled=True)

    def _generate(self, job: _Job) -> None:
        llm, request = self.llm, job.request
        prompt = request.prompt_tokens
        cached = self._reuse_prefix(prompt)
        self.stats.set_active(1)
        self.stats.add_tokens(prompt=len(prompt), cached=cached)
        # Prefill in chunks so a cancel or stop is noticed between them.
        pos = cached
        while pos < len(prompt):
            llm.eval(prompt[pos : pos + llm.n_batch])
            pos += llm.n_batch
            self._take(block=False)
            if job.cancelled or self.stopping:
                return self._end(job, cancelled=job.cancelled)
        sampler = NumpySampler(
            request.sampling,
            len(prompt),
            [_row_processor(make()) for make in request.logits_processors],
        )
        stops = [list(s) for s in request.stop_token_ids if s]
        eos = self.engine.eos_token_ids
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        history = list(prompt)
        generated, first = 0, None
        while True:
            token, logprobs = sampler(self.last_logits(), history)
            history.append(token)
            generated += 1
            first = first or time.perf_counter()
            stopped = token in eos or any(history[-len(s) :] == s for s in stops)
            reason: FinishReason | None = "stop" if stopped else None
            if reason is None and generated >= job.max_tokens:
                reason = "length"
            # The stop token's own text is never decoded (Engine's contract).
            piece = b"" if stopped else llm.detokenize([token], special=True)
            text = decoder.decode(piece, final=reason is not None)
            self.stats.add_tokens(generated=1)
            self._send(job, _token_event(token, text, logprobs, request.sampling.top_logprobs))
            if reason is not None:
                # The last token is not evaluated: the next prompt that continues this
                # conversation prefills it with its own new tokens.
                done = _done(job, reason, generated, cached, first)
                self._send(job, done)
                self._retire(job)
                return
            llm.eval([token])
            self._take(block=False)
            if job.cancelled or self.stopping:
                return self._end(job, cancelled=job.cancelled, generated=generated)

    def _reuse_prefix(self, prompt: list[int]) -> int:
        """Keep the KV of the longest prefix shared with the last sequence (one token re-run)."""
        llm = self.llm
        kept = llm.input_ids[: llm.n_tokens]
        n = 0
        for a, b in zip(kept, prompt, strict=False):
            if int(a) != b:
                break
            n += 1
        n = min(n, len(prompt) - 1)  # the last prompt token must run to give logits
        llm.n_tokens = n  # eval() drops the KV from n_tokens on
        return n

    def _end(self, job: _Job, *, cancelled: bool, generated: int = 0) -> None:
        if cancelled:
            self._retire(job, cancelled=True)
        else:
            self._finish(job, "error", error="the engine was closed")

    def _send(self, job: _Job, event: Event) -> None:
        try:
            job.loop.call_soon_threadsafe(job.events.put_nowait, event)
        except RuntimeError:
            job.cancelled = True  # the caller's loop is gone: nobody will read

    def _finish(self, job: _Job, reason: FinishReason, *, error: str | None = None) -> None:
        if reason == "error":
            self.stats.add_error()
        self._send(job, _done(job, reason, 0, 0, None, error=error))
        self._retire(job)

    def _retire(self, job: _Job, *, cancelled: bool = False) -> None:
        if job.finished:
            return
        job.finished = True
        seconds = None if cancelled else time.perf_counter() - job.submitted
        self.stats.release(seconds=seconds, cancelled=cancelled)
        self.stats.set_active(0)

    def _shutdown(self) -> None:
        with self.engine._gate:
            self.engine._running = False
        self._take(block=False)
        for job in list(self.waiting):
            self._finish(job, "error", error="the engine was closed")
        self.waiting.clear()
        self.llm.close()


def usable_cpus() -> int:
    """The CPUs this process may run on: llama-cpp-python's default (half) idles half of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


def _trained_context(file: Path) -> int:
    """The context length the GGUF declares (header only); the default when absent."""
    from mlxctl.store.ggufinfo import read_gguf

    try:
        declared = read_gguf(file).context_length
    except Exception:  # llama.cpp will say what is wrong with the file when it loads it
        return DEFAULT_MAX_CONTEXT
    return declared or DEFAULT_MAX_CONTEXT


def _token_event(token: int, text: str, logprobs: Row | None, top: int) -> TokenEvent:
    if logprobs is None:
        return TokenEvent(token, text)
    best: tuple[tuple[int, float], ...] = ()
    if top:
        ids = np.argpartition(-logprobs, top - 1)[:top]
        ids = ids[np.argsort(-logprobs[ids])]
        best = tuple((int(i), float(logprobs[i])) for i in ids)
    return TokenEvent(token, text, float(logprobs[token]), best)


def _done(
    job: _Job,
    reason: FinishReason,
    generated: int,
    cached: int,
    first: float | None,
    *,
    error: str | None = None,
) -> DoneEvent:
    now = time.perf_counter()
    return DoneEvent(
        finish_reason=reason,
        prompt_tokens=len(job.request.prompt_tokens),
        completion_tokens=generated,
        cached_tokens=cached,
        error=error,
        time_to_first_token=None if first is None else first - job.submitted,
        generation_seconds=None if first is None else now - first,
    )


def _row_processor(processor: Callable[[Any, Any], Any]) -> RowProcessor:
    """An mlx-lm logits processor (mx arrays, (1, vocab) logits) on a numpy row."""
    import mlx.core as mx

    def apply(history: list[int], row: Row) -> Row:
        out = processor(mx.array(history), mx.array(row)[None])
        return np.array(out, dtype=np.float32).reshape(-1)

    return apply
