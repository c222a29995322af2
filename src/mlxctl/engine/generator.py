"""The engine: one generation thread that owns the model, fed by a queue.

    caller (asyncio)                         generation thread (all MLX work)
    Engine.generate ── submit/cancel ──▶ SimpleQueue ──▶ _Generation.run
         ▲                                                   │ Batch.step()
         └── asyncio.Queue ◀── loop.call_soon_threadsafe ────┘ TokenEvent / DoneEvent

`Engine.generate` checks a request in pure Python (context length, sampling
values, room in batch + queue), then hands it to the thread. The thread admits
waiting requests while fewer than `max_batch` sequences decode, runs one
continuous-batching step of mlx-lm's BatchGenerator, turns the step's tokens
into events and sends each event loop its events with one wake-up per step.
A consumer that stops iterating sends a cancel; the thread drops the sequence
on its next step. A failing request gets `DoneEvent(finish_reason="error")`;
the thread carries on. `Engine.embed` puts an embed job on the same queue; the
thread answers it between steps (pooled last hidden state, docs/embeddings.md).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxctl.engine import mlxlm, pooling, sampling
from mlxctl.engine.embedjob import EmbedJob, check_tokens, settle
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.prompt_cache import CacheHit, PromptCache
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, FinishReason, GenerationRequest, TokenEvent
from mlxctl.errors import InvalidInput, NotFound, Unavailable

__all__ = ["ContextOverflow", "Engine", "QueueFull"]

log = logging.getLogger(__name__)

Event = TokenEvent | DoneEvent

# config.json keys that give the context length, in order of trust.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_FALLBACK_CONTEXT = 4096
# A prompt needing more prefill than this waits for other prefills to finish before starting.
_LONG_PREFILL = 256
# A shared prefix shorter than this is cheaper to prefill than to copy from a running request.
_MIN_BORROW = 32
# Stats (memory, prompt cache) are republished at most this often while decoding.
_PUBLISH_EVERY = 0.05


class QueueFull(Unavailable):
    """Batch and queue are full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "The model is busy: its batch and queue are full.",
            hint=f"Retry in {retry_after:.0f}s, or raise --max-queue.",
        )
        self.retry_after = retry_after


class ContextOverflow(InvalidInput, ValueError):
    """The prompt leaves no room in the model's context for a reply."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"The prompt is {prompt_tokens} tokens; the model's context is {context_length}.",
            hint="Shorten the prompt or the conversation history.",
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


def checked_max_tokens(request: GenerationRequest, context_length: int, vocab_size: int) -> int:
    """Check `request` against the model (both engines); its max_tokens, clamped to fit.

    Raises ValueError for an empty prompt, unknown token ids or bad sampling values, and
    ContextOverflow when the prompt leaves no room for a reply.
    """
    prompt = request.prompt_tokens
    if not prompt:
        raise ValueError("The prompt has no tokens.")
    if len(prompt) >= context_length:
        raise ContextOverflow(len(prompt), context_length)
    if request.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, not {request.max_tokens}")
    if min(prompt) < 0 or max(prompt) >= vocab_size:
        raise ValueError(f"Prompt token ids must be in [0, {vocab_size}).")
    sampling.validate(request.sampling, vocab_size)
    return min(request.max_tokens, context_length - len(prompt))


@dataclass(eq=False)
class _Job:
    """One request's life; fields below `submitted` are touched by the generation thread only."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event]
    max_tokens: int
    submitted: float = field(default_factory=time.perf_counter)
    uid: int | None = None
    detokenizer: Any = None
    cached: int = 0
    generated: int = 0
    first_token: float | None = None
    failure: str | None = None
    finished: bool = False


class Engine:
    """Serves one model to many concurrent requests with continuous batching.

    `start()` loads the model on the generation thread and fills `tokenizer`,
    `context_length`, `eos_token_ids` and `vocab_size`; `close()` stops the thread
    and drops the model. All other methods are safe from any thread; `generate`
    from any event loop.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        max_batch: int = 8,
        max_queue: int = 64,
        prompt_cache_entries: int = 16,
        prompt_cache_bytes: int = 2 << 30,
        prefill_step_size: int = 2048,
        adapter_path: Path | str | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 0 or prefill_step_size < 1:
            raise ValueError("max_batch and prefill_step_size must be >= 1, max_queue >= 0")
        self.model_path = Path(model_path)
        # A LoRA adapter folder (mlx_lm.lora's output) applied on load; None: the base weights.
        self.adapter_path = Path(adapter_path) if adapter_path is not None else None
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.prompt_cache_entries = prompt_cache_entries
        self.prompt_cache_bytes = prompt_cache_bytes
        self.prefill_step_size = prefill_step_size
        self.tokenizer: mlxlm.TokenizerWrapper
        self.context_length = 0
        self.eos_token_ids: set[int] = set()
        self.vocab_size = 0
        self._stats = EngineStats(max_batch=max_batch, max_queue=max_queue)
        self._commands: queue.SimpleQueue[tuple[str, _Job | EmbedJob | None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        # Guards `_running` with the enqueue, so no submit lands after shutdown drained.
        self._gate = threading.Lock()
        self._running = False

    def start(self) -> None:
        """Load model and tokenizer on the generation thread; block until ready or raise."""
        if self._thread is not None:
            raise RuntimeError("Engine.start() was already called")
        if not self.model_path.is_dir():
            raise NotFound(f"Model directory {self.model_path} not found.")
        if self.adapter_path is not None and not self.adapter_path.is_dir():
            raise NotFound(f"Adapter directory {self.adapter_path} not found.")
        self._thread = threading.Thread(target=self._run, name="mlxctl-generation", daemon=True)
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
        """A consistent snapshot of counters; never calls MLX."""
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
                self._commands.put(("cancel", job))

    async def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        """Pooled-hidden-state embeddings, one L2-normalised vector per token list.

        Runs on the generation thread between decoding steps (docs/embeddings.md);
        raises ValueError for empty inputs, inputs over the context or unknown ids, and
        QueueFull when batch and queue are full (an embedding takes a place like a request).
        """
        check_tokens(token_lists, context_length=self.context_length, vocab_size=self.vocab_size)
        if not self._stats.admit():
            raise QueueFull(self._stats.retry_after())
        try:
            job = EmbedJob.new(token_lists)
            with self._gate:
                if not self._running:
                    raise Unavailable("The engine is not running.", hint="Start it first.")
                self._commands.put(("embed", job))
            return await job.future
        finally:
            self._stats.release()

    def _submit(self, request: GenerationRequest) -> _Job:
        if not self._running:
            raise Unavailable("The engine is not running.", hint="Start it first.")
        max_tokens = checked_max_tokens(request, self.context_length, self.vocab_size)
        if not self._stats.admit():
            raise QueueFull(self._stats.retry_after())
        job = _Job(
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
        try:
            generation = self._load()
        except BaseException as exc:
            self._load_error = exc
            self._ready.set()
            _release_thread_streams()
            return
        self._ready.set()
        generation.run()
        del generation
        _release_thread_streams()

    def _load(self) -> _Generation:
        model, tokenizer = mlxlm.load(self.model_path, adapter_path=self.adapter_path)
        config = json.loads((self.model_path / "config.json").read_text())
        self.tokenizer = tokenizer
        self.context_length = _context_length(config, tokenizer)
        self.eos_token_ids = set(tokenizer.eos_token_ids)
        self.vocab_size = int(_config_value(config, "vocab_size") or len(tokenizer))
        return _Generation(self, model)


class _Generation:
    """The generation thread's state: model, batch, prompt cache and live jobs."""

    def __init__(self, engine: Engine, model: Any) -> None:
        self.engine = engine
        self.model = model
        self.stats = engine._stats
        self.commands = engine._commands
        self.stream = mx.default_stream(mx.default_device())
        self.cache = PromptCache(engine.prompt_cache_entries, engine.prompt_cache_bytes)
        self.batch = self._new_batch()
        self.waiting: deque[_Job] = deque()
        self.active: dict[int, _Job] = {}
        self.failed: list[_Job] = []  # jobs whose logits processor raised this step
        self.stop = [[token] for token in sorted(engine.eos_token_ids)]
        self.published = 0.0

    def _new_batch(self) -> mlxlm.Batch:
        return mlxlm.Batch(
            self.model,
            max_batch=self.engine.max_batch,
            prefill_step_size=self.engine.prefill_step_size,
            stream=self.stream,
        )

    def run(self) -> None:
        """Serve commands until told to stop; no exception ends the loop early."""
        try:
            while True:
                try:
                    if not self._take_commands(block=not self.active and not self.waiting):
                        return
                    self._admit()
                    if self.active:
                        self._step()
                except Exception as exc:
                    # The batch may be half-stepped: fail its sequences, start a new one.
                    log.exception("generation step failed")
                    self._fail_active(f"generation failed: {exc!r}")
                self._publish(force=not self.active)
        finally:
            self._shutdown()

    def _take_commands(self, *, block: bool) -> bool:
        """Apply queued submits and cancels; False once told to stop."""
        try:
            command = self.commands.get(block=block)
            while True:
                kind, job = command
                if kind == "stop":
                    return False
                if isinstance(job, EmbedJob):
                    self._embed(job)
                elif job is None:
                    raise AssertionError(f"command {kind!r} without a job")
                elif kind == "submit":
                    self.waiting.append(job)
                else:
                    self._cancel(job)
                command = self.commands.get_nowait()
        except queue.Empty:
            return True

    def _embed(self, job: EmbedJob) -> None:
        # Inline between steps: a short forward pass per input, no KV cache kept.
        try:
            vectors = [pooling.chat_embedding(self.model, tokens) for tokens in job.token_lists]
        except Exception as exc:
            log.exception("embedding failed")
            settle(job, exc)
            return
        self.stats.add_tokens(prompt=sum(map(len, job.token_lists)))
        settle(job, vectors)

    def _admit(self) -> None:
        admitted = False
        while self.waiting and len(self.active) < self.engine.max_batch:
            if not self._may_prefill_now(self.waiting[0]):
                break  # it starts once the long prefill ahead of it has produced a token
            job = self.waiting.popleft()
            admitted = True
            try:
                self._insert(job)
            except Exception as exc:
                log.exception("could not start a request")
                self._finish(job, "error", error=f"could not start: {exc!r}")
        if admitted:
            self.stats.set_active(len(self.active))
            self._publish(force=True)

    def _may_prefill_now(self, job: _Job) -> bool:
        """Long prompts prefill one at a time; short ones share a prefill batch.

        Batched beside others, a long prefill slows every prompt in the batch (measured:
        four 2k-token prompts took 51 s each batched, 13–31 s one after another).
        """
        prefilling = [j for j in self.active.values() if j.first_token is None]
        if not prefilling:
            return True
        prompt = job.request.prompt_tokens
        if len(prompt) - self.cache.peek(prompt) > _LONG_PREFILL:
            return False
        return all(len(j.request.prompt_tokens) - j.cached <= _LONG_PREFILL for j in prefilling)

    def _insert(self, job: _Job) -> None:
        request = job.request
        prompt = request.prompt_tokens
        hit = self._borrow(prompt) or self.cache.fetch(prompt)
        processors = sampling.make_processors(request.sampling, len(prompt))
        processors += [self._guard(job, make()) for make in request.logits_processors]
        job.uid = self.batch.insert(
            prompt[hit.tokens :],
            max_tokens=job.max_tokens,
            cache=hit.cache,
            cached_tokens=prompt[: hit.tokens],
            sampler=sampling.make_sampler(request.sampling, self.engine.vocab_size),
            processors=processors,
            stop=self.stop + [list(s) for s in request.stop_token_ids if s],
        )
        job.cached = hit.tokens
        job.detokenizer = mlxlm.streaming_detokenizer(self.engine.tokenizer)
        self.active[job.uid] = job
        self.stats.add_tokens(prompt=len(prompt), cached=hit.tokens)

    def _borrow(self, prompt: list[int]) -> CacheHit | None:
        """The KV of a decoding request sharing a longer prompt prefix than the cache holds.

        Concurrent requests with one system prompt prefill it once: later ones copy it.
        """
        best, uid = 0, None
        for other in self.active.values():
            if other.first_token is None or other.uid is None:
                continue  # still prefilling: its KV is not whole yet
            n = min(common_prefix(other.request.prompt_tokens, prompt), len(prompt) - 1)
            if n > best:
                best, uid = n, other.uid
        if uid is None or best < _MIN_BORROW or best <= self.cache.peek(prompt):
            return None
        cache = self.batch.borrow(uid, prompt[:best])
        if cache is None:
            return None
        self.cache.hits += 1
        return CacheHit(cache, best)

    def _guard(self, job: _Job, processor: mlxlm.LogitsProcessor) -> mlxlm.LogitsProcessor:
        """Wrap a caller's processor so its exception fails its job, not the batch."""

        def guarded(tokens: mx.array, logits: mx.array) -> mx.array:
            if job.failure is not None:
                return logits
            try:
                return processor(tokens, logits)
            except Exception as exc:
                job.failure = f"logits processor failed: {exc!r}"
                self.failed.append(job)
                return logits

        return guarded

    def _step(self) -> None:
        prompt_chunks, responses = self.batch.step()
        if not prompt_chunks and not responses:
            raise RuntimeError("the batch made no progress")
        # Counters first: a consumer reading stats after its DoneEvent sees them.
        self.stats.add_tokens(generated=len(responses))
        now = time.perf_counter()
        out: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Event]]] = {}
        retired = False
        try:
            for r in responses:
                job = self.active.get(r.uid)
                if job is None or job.failure is not None:
                    continue
                events = out.setdefault(job.loop, [])
                events.append((job, self._token_event(job, r)))
                if job.first_token is None:
                    job.first_token = now
                if r.finish_reason is not None:
                    if r.prompt_cache is not None and r.all_tokens is not None:
                        self._store(list(r.all_tokens), r.prompt_cache)
                    reason: FinishReason = "stop" if r.finish_reason == "stop" else "length"
                    events.append((job, self._done(job, reason, now=now)))
                    self._retire(job, now)
                    retired = True
        finally:
            # Even a step that breaks midway owes retired jobs their DoneEvent.
            self._publish(force=retired)
            self._deliver(out)
        if self.failed:
            failed = [job for job in self.failed if not job.finished]
            self.failed.clear()
            self.batch.remove([job.uid for job in failed if job.uid is not None])
            for job in failed:
                self._finish(job, "error", error=job.failure)

    def _token_event(self, job: _Job, r: mlxlm.BatchResponse) -> TokenEvent:
        """The event for one generated token; the stop token's own text is not decoded."""
        params = job.request.sampling
        detokenizer = job.detokenizer
        if r.finish_reason != "stop":
            detokenizer.add_token(r.token)
        if r.finish_reason is not None:
            detokenizer.finalize()
        logprob: float | None = None
        top: tuple[tuple[int, float], ...] = ()
        if params.logprobs or params.top_logprobs:
            row = sampling.logprobs_row(r.logprobs)
            logprob = float(row[r.token]) if params.logprobs else None
            top = sampling.top_logprobs(row, params.top_logprobs)
        job.generated += 1
        return TokenEvent(r.token, detokenizer.last_segment, logprob, top)

    def _store(self, tokens: list[int], cache: list[Any]) -> None:
        try:
            self.cache.store(tokens, cache)
        except Exception:
            # Losing a cache entry costs prefill time later, never correctness.
            log.exception("could not keep a prompt cache")

    def _done(
        self, job: _Job, reason: FinishReason, error: str | None = None, now: float | None = None
    ) -> DoneEvent:
        now = time.perf_counter() if now is None else now
        first = job.first_token
        return DoneEvent(
            finish_reason=reason,
            prompt_tokens=len(job.request.prompt_tokens),
            completion_tokens=job.generated,
            cached_tokens=job.cached,
            error=error,
            time_to_first_token=None if first is None else first - job.submitted,
            generation_seconds=None if first is None else now - first,
        )

    def _retire(self, job: _Job, now: float, *, cancelled: bool = False) -> None:
        """Forget a job that left the batch (or never entered it)."""
        job.finished = True
        if job.uid is not None:
            self.active.pop(job.uid, None)
        self.stats.release(seconds=None if cancelled else now - job.submitted, cancelled=cancelled)
        self.stats.set_active(len(self.active))

    def _finish(self, job: _Job, reason: FinishReason, *, error: str | None = None) -> None:
        """End a job outside a normal step: send its DoneEvent now."""
        if reason == "error":
            self.stats.add_error()
        done = self._done(job, reason, error)
        self._retire(job, time.perf_counter())
        self._deliver({job.loop: [(job, done)]})

    def _cancel(self, job: _Job) -> None:
        if job.finished:
            return
        if job.uid is not None and job.uid in self.active:
            self.batch.remove([job.uid])
        elif job in self.waiting:
            self.waiting.remove(job)
        self._retire(job, time.perf_counter(), cancelled=True)

    def _fail_active(self, message: str) -> None:
        for job in list(self.active.values()):
            self._finish(job, "error", error=message)
        self.failed.clear()
        self.batch.close()
        self.batch = self._new_batch()

    def _deliver(self, out: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Event]]]) -> None:
        for loop, events in out.items():
            try:
                loop.call_soon_threadsafe(_put_all, events)
            except RuntimeError:
                # The caller's loop is closed: nobody will read; drop its sequences.
                for job, _ in events:
                    self._cancel(job)

    def _publish(self, *, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self.published < _PUBLISH_EVERY:
            return
        self.published = now
        memory = {
            "active": mx.get_active_memory(),
            "peak": mx.get_peak_memory(),
            "cache": mx.get_cache_memory(),
        }
        self.stats.publish(memory=memory, prompt_cache=self.cache.stats())

    def _shutdown(self) -> None:
        with self.engine._gate:
            self.engine._running = False
        # Submits and cancels still queued behind the stop.
        while True:
            try:
                kind, job = self.commands.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, EmbedJob):
                settle(job, Unavailable("The engine was closed."))
            elif kind == "submit" and job is not None:
                self.waiting.append(job)
        for job in [*self.active.values(), *self.waiting]:
            if not job.finished:
                self._finish(job, "error", error="the engine was closed")
        self.active.clear()
        self.waiting.clear()
        self.batch.close()
        del self.batch, self.model
        self.cache.clear()
        mx.clear_cache()
        self._publish(force=True)


def _release_thread_streams() -> None:
    # MLX keeps a worker per stream; one left behind by an exited thread
    # aborts the process at exit ("terminate called without an active exception").
    gc.collect()
    mx.synchronize()
    mx.clear_streams()


def _put_all(events: list[tuple[_Job, Event]]) -> None:
    for job, event in events:
        job.events.put_nowait(event)


def _config_value(config: dict[str, Any], key: str) -> Any:
    value = config.get(key)
    if value is None and isinstance(config.get("text_config"), dict):
        value = config["text_config"].get(key)
    return value


def _context_length(config: dict[str, Any], tokenizer: Any) -> int:
    """The model's context from config.json, else the tokenizer's limit, else 4096."""
    for key in _CONTEXT_KEYS:
        value = _config_value(config, key)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**8:
        return limit
    return _FALLBACK_CONTEXT
