"""A GGUF engine on llama.cpp with the same face as `engine.generator.Engine`.

    caller (asyncio)                          generation thread (all llama.cpp work)
    LlamaCppEngine.generate ── submit/cancel ──▶ SimpleQueue ──▶ SlotLoop.run
         ▲                                                  │ llama_decode, sample (numpy)
         └── asyncio.Queue ◀── loop.call_soon_threadsafe ───┘ TokenEvent / DoneEvent

Up to `max_batch` requests decode together in one llama.cpp context whose KV cache
they share (`engine/llamaslots.py`: continuous batching, prefix reuse per slot);
others wait in the queue (bounded: `QueueFull` beyond it). Sampling runs per
request in numpy (`npsampler`) on the raw logits, so seeds, penalties, logit bias
and the worker's logits processors (structured output) behave as with the MLX engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlxctl.engine.generator import ContextOverflow, QueueFull, checked_max_tokens
from mlxctl.engine.llamaslots import SlotLoop
from mlxctl.engine.npsampler import Row, RowProcessor
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, GenerationRequest, TokenEvent
from mlxctl.errors import NotFound, Unavailable
from mlxctl.store.local.ggufinfo import GGUF_MAX_CONTEXT

__all__ = ["ContextOverflow", "LlamaCppEngine", "QueueFull", "find_gguf"]

log = logging.getLogger(__name__)

Event = TokenEvent | DoneEvent
# Without a setting, the context is the model's, capped: llama.cpp allocates all of it.
DEFAULT_MAX_CONTEXT = GGUF_MAX_CONTEXT
# The context of the Llama object that only tokenizes (the loop decodes in its own).
_TOKENIZER_CTX = 64


def find_gguf(path: Path, gguf_file: str | None = None) -> Path:
    """The GGUF file to load: `path` itself, `path/gguf_file`, or the folder's first one."""
    from mlxctl.store.local.ggufinfo import pick_gguf

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
    """Serves one GGUF model to up to `max_batch` sequences at once, through llama-cpp-python.

    `start()` loads on the generation thread and fills `tokenizer`, `context_length`,
    `eos_token_ids` and `vocab_size`; `close()` stops it. `generate` may be called
    from any event loop; closing its iterator cancels the request.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        gguf_file: str | None = None,
        max_batch: int = 4,
        max_queue: int = 64,
        context_length: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = -1,
        n_batch: int = 512,
    ) -> None:
        if max_batch < 1 or max_queue < 0 or n_batch < 1:
            raise ValueError("max_batch and n_batch must be >= 1, max_queue >= 0")
        self.max_batch = max_batch
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
        self._stats = EngineStats(max_batch=max_batch, max_queue=max_queue)
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
            loop = self._load()
        except BaseException as exc:
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run()

    def _load(self) -> SlotLoop:
        import llama_cpp

        from mlxctl.engine.gguftokenizer import load_gguf_tokenizer

        n_ctx = self.requested_context or min(_trained_context(self.file), DEFAULT_MAX_CONTEXT)
        # This Llama only holds the weights and the vocabulary: the loop decodes in its own
        # context, sized for every slot, so the Llama's is kept minimal.
        llm = llama_cpp.Llama(
            str(self.file),
            n_ctx=_TOKENIZER_CTX,
            n_batch=_TOKENIZER_CTX,
            n_threads=self.n_threads,
            n_gpu_layers=self.n_gpu_layers,
            verbose=False,
        )
        try:
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = params.n_ubatch = min(self.n_batch, n_ctx)
            params.n_seq_max = self.max_batch
            params.kv_unified = True  # every slot may use any KV cell
            params.n_threads = params.n_threads_batch = self.n_threads
            ctx = llama_cpp.llama_init_from_model(llm.model, params)
            if not ctx:
                raise Unavailable(f"llama.cpp could not create a context for {self.file.name}")
            self.tokenizer = load_gguf_tokenizer(
                self.model_path if self.model_path.is_dir() else self.file.parent, llm
            )
            self.context_length = int(llama_cpp.llama_n_ctx(ctx))
            self.vocab_size = int(llm.n_vocab())
        except BaseException:
            llm.close()
            raise
        eos = {int(t) for t in self.tokenizer.eos_token_ids}
        if int(llm.token_eos()) >= 0:
            eos.add(int(llm.token_eos()))
        self.eos_token_ids = eos
        return SlotLoop(self, llm, ctx, int(params.n_batch))


def usable_cpus() -> int:
    """The CPUs this process may run on: llama-cpp-python's default (half) idles half of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


def _trained_context(file: Path) -> int:
    """The context length the GGUF declares (header only); the default when absent."""
    from mlxctl.store.local.ggufinfo import read_gguf

    try:
        declared = read_gguf(file).context_length
    except Exception:  # llama.cpp will say what is wrong with the file when it loads it
        return DEFAULT_MAX_CONTEXT
    return declared or DEFAULT_MAX_CONTEXT


def row_processor(processor: Callable[[Any, Any], Any]) -> RowProcessor:
    """An mlx-lm logits processor (mx arrays, (1, vocab) logits) on a numpy row."""
    import mlx.core as mx

    def apply(history: list[int], row: Row) -> Row:
        out = processor(mx.array(history), mx.array(row)[None])
        return np.array(out, dtype=np.float32).reshape(-1)

    return apply
