"""The embedding engine: one thread owns a BERT encoder, fed by a queue.

    caller (asyncio)                        encoder thread (all MLX work)
    EncoderEngine.embed ── job ──▶ SimpleQueue ──▶ padded forward pass per chunk
         ▲                                                 │
         └── asyncio.Future ◀── loop.call_soon_threadsafe ─┘ vectors

The worker's HTTP side tokenizes with `tokenizer` and hands token ids over, as for
the generation engine; a list of inputs is one padded forward pass (chunked at
`max_batch` rows). At most `max_queue` requests wait behind the one being encoded;
more get QueueFull (429). It generates nothing: `generate` raises InvalidInput.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import mlx.core as mx
from tokenizers import Tokenizer

from mlxctl.engine.bert import BertModel, load_bert
from mlxctl.engine.embedjob import EmbedJob, check_tokens, settle
from mlxctl.engine.generator import QueueFull
from mlxctl.engine.pooling import pad
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, GenerationRequest, TokenEvent
from mlxctl.errors import InvalidInput, NotFound, Unavailable

__all__ = ["EncoderEngine", "EncoderTokenizer"]

log = logging.getLogger(__name__)


class EncoderTokenizer:
    """A `tokenizers.Tokenizer` behind the two calls the worker makes (`encode`, `len`)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.token_to_id("[PAD]") or 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids))

    def __len__(self) -> int:
        return int(self.tokenizer.get_vocab_size())


class EncoderEngine:
    """Serves one sentence encoder; `start()` loads it on its thread, `close()` stops it."""

    kind: Literal["embedding"] = "embedding"

    def __init__(self, model_path: Path | str, *, max_batch: int = 32, max_queue: int = 64) -> None:
        self.model_path = Path(model_path)
        self.max_batch = max_batch
        self.max_queue = max_queue
        # Bounds requests in flight: the one being encoded plus `max_queue` waiting.
        self._admission = EngineStats(max_batch=1, max_queue=max_queue)
        self.tokenizer: EncoderTokenizer
        self.context_length = 0
        self.eos_token_ids: set[int] = set()
        self.vocab_size = 0
        self._jobs: queue.SimpleQueue[EmbedJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._counts = {
            "requests_total": 0,
            "inputs_total": 0,
            "tokens_total": 0,
            "errors_total": 0,
        }
        self._lock = threading.Lock()  # guards `_counts` only; MLX stays on the thread

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("EncoderEngine.start() was already called")
        if not self.model_path.is_dir():
            raise NotFound(f"Model directory {self.model_path} not found.")
        self._thread = threading.Thread(target=self._run, name="mlxctl-encoder", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error

    def close(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self._jobs.put(None)
        self._thread.join()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"kind": "embedding", **self._counts}

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent | DoneEvent]:
        raise InvalidInput(
            f"'{self.model_path.name}' is an embedding model: it serves /v1/embeddings only."
        )
        yield  # pragma: no cover - makes this an async generator like Engine.generate

    async def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        """One L2-normalised vector per token list, in order; raises ValueError on bad ids."""
        if self._thread is None or not self._thread.is_alive():
            raise Unavailable("The engine is not running.", hint="Start it first.")
        check_tokens(token_lists, context_length=self.context_length, vocab_size=self.vocab_size)
        if not self._admission.admit():
            raise QueueFull(self._admission.retry_after())
        started = time.perf_counter()
        try:
            job = EmbedJob.new(token_lists)
            self._jobs.put(job)
            return await job.future
        finally:
            self._admission.release(seconds=time.perf_counter() - started)

    def _run(self) -> None:
        try:
            model = self._load()
        except BaseException as exc:
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        while (job := self._jobs.get()) is not None:
            self._serve(model, job)
        del model
        mx.clear_cache()

    def _load(self) -> BertModel:
        config = json.loads((self.model_path / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        self.context_length = int(config.get("max_position_embeddings") or 512)
        # Over-long inputs are the HTTP side's call (400, or `truncate`), never silent.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = EncoderTokenizer(tokenizer)
        self.vocab_size = int(config.get("vocab_size") or len(self.tokenizer))
        return load_bert(self.model_path)

    def _serve(self, model: BertModel, job: EmbedJob) -> None:
        try:
            vectors: list[list[float]] = []
            for start in range(0, len(job.token_lists), self.max_batch):
                chunk = job.token_lists[start : start + self.max_batch]
                ids, mask = pad(chunk, self.tokenizer.pad_token_id)
                pooled = model.embed(ids, mask)
                mx.eval(pooled)
                vectors.extend(pooled.tolist())  # type: ignore[arg-type]
        except Exception as exc:
            log.exception("embedding failed")
            with self._lock:
                self._counts["errors_total"] += 1
            settle(job, exc)
            return
        with self._lock:
            self._counts["requests_total"] += 1
            self._counts["inputs_total"] += len(job.token_lists)
            self._counts["tokens_total"] += sum(map(len, job.token_lists))
        settle(job, vectors)
