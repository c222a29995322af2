"""The mlx-lm engine: continuous batching on mlx-lm's BatchGenerator, on the host's thread.

`Engine` is an `EngineHost` (engine/host.py: the thread, the queue, the request
check, cancels and errors); `_Generation` is its backend. It admits a waiting
request while no long prefill is under way (prefix from a running request or the
prompt cache first), runs one continuous-batching step of mlx-lm's BatchGenerator
and turns the step's tokens into events. `Engine.embed` answers between steps
(pooled last hidden state, docs/embeddings.md).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxctl.engine import mlxlm, pooling, sampling, speculative
from mlxctl.engine.cachetiers import CacheOptions, CacheTiers
from mlxctl.engine.checkpoints import needs_checkpoints
from mlxctl.engine.checks import ContextOverflow
from mlxctl.engine.host import EngineHost, QueueFull
from mlxctl.engine.outbox import Job, Outbox
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.prompt_cache import CacheHit, PromptCache
from mlxctl.engine.solo import Solo
from mlxctl.engine.specgain import RoundCosts
from mlxctl.engine.speculative import Speculation
from mlxctl.engine.types import TokenEvent
from mlxctl.errors import NotFound

# The worker imports the errors from here: they are what `Engine.generate` raises.
__all__ = ["ContextOverflow", "Engine", "QueueFull"]

log = logging.getLogger(__name__)

# config.json keys that give the context length, in order of trust.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_FALLBACK_CONTEXT = 4096
# A prompt needing more prefill than this waits for other prefills to finish before starting.
_LONG_PREFILL = 256
# Prompt tokens per prefill chunk. MLX's CPU attention materialises chunk x context scores:
# 512-token chunks prefill a 2k prompt ~1.4x faster than mlx-lm's 2048 (docs/performance.md).
_CPU_PREFILL_STEP = 512
_GPU_PREFILL_STEP = 2048
# A shared prefix shorter than this is cheaper to prefill than to copy from a running request.
_MIN_BORROW = 32
# Stats (memory, prompt cache) are republished at most this often while decoding.
_PUBLISH_EVERY = 0.05


class Engine(EngineHost["_Generation"]):
    """Serves one MLX model to many concurrent requests with continuous batching.

    `start()` loads the model on the generation thread and fills `tokenizer`,
    `context_length`, `eos_token_ids` and `vocab_size`; `close()` stops the thread
    and drops the model. All other methods are safe from any thread; `generate`
    from any event loop.
    """

    thread_name = "mlxctl-generation"

    def __init__(
        self,
        model_path: Path | str,
        *,
        max_batch: int = 8,
        max_queue: int = 64,
        prompt_cache_entries: int = 16,
        prompt_cache_bytes: int = 2 << 30,
        prefill_step_size: int | None = None,
        adapter_path: Path | str | None = None,
        cache_options: CacheOptions | None = None,
        speculation: Speculation | None = None,
        fast_path: bool = True,
        long_prefills: int = 1,
    ) -> None:
        prefill_step_size = prefill_step_size or default_prefill_step()
        if min(max_batch, prefill_step_size, long_prefills) < 1 or max_queue < 0:
            raise ValueError(
                "max_batch, prefill_step_size and long_prefills must be >= 1, max_queue >= 0"
            )
        super().__init__(model_path, max_batch=max_batch, max_queue=max_queue)
        # A LoRA adapter folder (mlx_lm.lora's output) applied on load; None: the base weights.
        self.adapter_path = Path(adapter_path) if adapter_path is not None else None
        self.prompt_cache_entries = prompt_cache_entries
        self.prompt_cache_bytes = prompt_cache_bytes
        self.prefill_step_size = prefill_step_size
        # Long prompts (> _LONG_PREFILL tokens to prefill) that may prefill together. 1: batched,
        # they cost the same per prompt and each waits for the last (docs/performance.md).
        self.long_prefills = long_prefills
        # Quantized KV, the disk tier and checkpoints (engine/cachetiers.py).
        self.cache_options = cache_options or CacheOptions()
        self.cache_options.check()
        # A lone sequence decodes off the batch (engine/solo.py); speculation runs there.
        self.speculation = speculation or Speculation(num_draft_tokens=0)
        self.speculation_off: str | None = None  # why this model cannot speculate, once loaded
        self.fast_path = fast_path
        self.tokenizer: mlxlm.TokenizerWrapper

    async def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        """Pooled-hidden-state embeddings, one L2-normalised vector per token list.

        Runs on the generation thread between decoding steps (docs/embeddings.md);
        raises ValueError for empty inputs, inputs over the context or unknown ids, and
        QueueFull when batch and queue are full (an embedding takes a place like a request).
        """
        return await self._embed(token_lists)

    def _prepare(self) -> None:
        super()._prepare()
        if self.adapter_path is not None and not self.adapter_path.is_dir():
            raise NotFound(f"Adapter directory {self.adapter_path} not found.")
        draft = self.speculation.draft_model
        if draft is not None and not draft.is_dir():
            raise NotFound(f"Draft model directory {draft} not found.")

    def _load(self, outbox: Outbox) -> _Generation:
        model, tokenizer = mlxlm.load(self.model_path, adapter_path=self.adapter_path)
        config = json.loads((self.model_path / "config.json").read_text())
        self.tokenizer = tokenizer
        self.context_length = _context_length(config, tokenizer)
        self.eos_token_ids = set(tokenizer.eos_token_ids)
        self.vocab_size = int(_config_value(config, "vocab_size") or len(tokenizer))
        options = self.cache_options
        checkpointing = options.checkpoint_every > 0 and needs_checkpoints(mlxlm.make_cache(model))
        self.speculation_off = speculative.unavailable(options.kv_bits, checkpointing)
        drafter = None
        if self.speculation.enabled and self.speculation_off is not None:
            log.warning("speculative decoding is off for this model: %s", self.speculation_off)
        else:
            drafter = speculative.load_drafter(
                self.speculation, self.vocab_size, prefill_step_size=self.prefill_step_size
            )
        return _Generation(self, model, outbox, drafter)

    def _thread_exit(self) -> None:
        release_thread_streams()


class _Generation:
    """The backend on the generation thread: model, batch, prompt cache and running jobs."""

    def __init__(
        self, engine: Engine, model: Any, outbox: Outbox, drafter: speculative.Drafter | None
    ) -> None:
        self.engine = engine
        self.model = model
        self.out = outbox
        self.stats = outbox.stats
        self.stream = mx.default_stream(mx.default_device())
        self.cache = PromptCache(engine.prompt_cache_entries, engine.prompt_cache_bytes)
        self.tiers = CacheTiers(engine.cache_options, model, engine.model_path, engine.adapter_path)
        self.batch = self._new_batch()
        self.active: dict[int, Job] = {}  # by batch uid
        self.failed: list[Job] = []  # jobs whose logits processor raised this step
        self.stop = [[token] for token in sorted(engine.eos_token_ids)]
        self.published = 0.0
        self.drafter = drafter
        self.costs = RoundCosts()  # what rounds and plain steps cost this model
        self.solo: Solo | None = None  # the lone sequence on the fast path (batch empty)
        self.solo_uids = 0  # counted down: never a batch uid

    def _new_batch(self) -> mlxlm.Batch:
        return mlxlm.Batch(
            self.model,
            max_batch=self.engine.max_batch,
            prefill_step_size=self.engine.prefill_step_size,
            stream=self.stream,
        )

    # --- the host's calls -----------------------------------------------------------

    def admit(self, job: Job) -> bool:
        if not self._may_prefill_now(job):
            return False  # it starts once the long prefill ahead of it has produced a token
        self._insert(job)
        return True

    def step(self) -> None:
        step = self.solo.step if self.solo is not None else self.batch.step
        prompt_chunks, responses = step()
        if not prompt_chunks and not responses:
            raise RuntimeError("the batch made no progress")
        for uid in self.batch.segment_ends:  # a checkpoint along a prompt
            if (snapshot := self.batch.snapshot(uid)) is not None:
                self._store(snapshot[1], snapshot[0])
        self._deliver(responses)
        if self.failed:
            failed = [job for job in self.failed if not job.finished]
            self.failed.clear()
            uids = [job.uid for job in failed if job.uid is not None]
            for uid in uids:
                if self.active.pop(uid, None) is not None:
                    self._drop(uid)
            for job in failed:
                self.out.finish(job, "error", error=job.failure)

    def _deliver(self, responses: list[Any]) -> None:
        """Turn generated tokens into events; finished sequences end their jobs."""
        # Counters first: a consumer reading stats after its DoneEvent sees them.
        self.stats.add_tokens(generated=len(responses))
        now = time.perf_counter()
        out = self.out
        for r in responses:
            job = self.active.get(r.uid)
            if job is None or job.failure is not None:
                continue
            out.send(job, self._token_event(job, r))
            if job.first_token is None:
                job.first_token = now
            if r.finish_reason is not None:
                if r.prompt_cache is not None and r.all_tokens is not None:
                    self._store(list(r.all_tokens), r.prompt_cache)
                del self.active[r.uid]
                if self.solo is not None and r.uid == self.solo.uid:
                    self.solo = None
                out.finish(job, "stop" if r.finish_reason == "stop" else "length", now=now)

    def _drop(self, uid: int) -> None:
        if self.solo is not None and uid == self.solo.uid:
            self.solo = None
        else:
            self.batch.remove([uid])

    def _handoff(self) -> None:
        """Move the lone sequence from the fast path into the batch (engine/solo.py)."""
        solo = self.solo
        assert solo is not None
        job = self.active[solo.uid]
        responses, rest = solo.handoff()
        self._deliver(responses)
        self.solo = None
        if rest is None:
            return  # its last token ended it
        del self.active[solo.uid]
        job.uid = self.batch.insert(
            rest.tokens,
            max_tokens=rest.max_tokens,
            cache=rest.cache,
            cached_tokens=rest.cached,
            sampler=solo.sampler,
            processors=solo.processors,
            stop=solo.stop,
        )
        self.active[job.uid] = job

    def cancel(self, job: Job) -> None:
        if job.uid is not None and self.active.pop(job.uid, None) is not None:
            self._drop(job.uid)

    def reset(self) -> None:
        self.active.clear()
        self.failed.clear()
        self.solo = None
        if self.drafter is not None:
            self.drafter.start([])  # a failed round may have left its cache half trimmed
        self.batch.close()
        self.batch = self._new_batch()

    def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        # Inline between steps: a short forward pass per input, no KV cache kept.
        return [pooling.chat_embedding(self.model, tokens) for tokens in token_lists]

    def publish(self, *, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self.published < _PUBLISH_EVERY:
            return
        self.published = now
        memory = {
            "active": mx.get_active_memory(),
            "peak": mx.get_peak_memory(),
            "cache": mx.get_cache_memory(),
        }
        self.stats.publish(memory=memory, prompt_cache=self.cache.stats() | self.tiers.stats())

    def close(self) -> None:
        self.active.clear()
        self.solo = None
        self.drafter = None
        self.batch.close()
        del self.batch, self.model
        self.cache.clear()
        self.tiers.close()
        mx.clear_cache()
        self.publish(force=True)

    # --- admission ----------------------------------------------------------------

    def _may_prefill_now(self, job: Job) -> bool:
        """Up to `long_prefills` long prompts prefill together; short ones share a batch.

        A short prompt never joins a long prefill (it would be padded to the long one's
        chunk) and a long one never joins a short one's, so neither waits long for the other.
        """
        prefilling = [j for j in self.active.values() if j.first_token is None]
        if not prefilling:
            return True
        prompt = job.request.prompt_tokens
        held = max(self.cache.peek(prompt), self.tiers.peek(prompt))
        long = sum(len(j.request.prompt_tokens) - j.cached > _LONG_PREFILL for j in prefilling)
        if len(prompt) - held > _LONG_PREFILL:
            return long == len(prefilling) and long < self.engine.long_prefills
        return long == 0

    def _insert(self, job: Job) -> None:
        request = job.request
        prompt = request.prompt_tokens
        hit = self.tiers.better(prompt, self._borrow(prompt) or self.cache.fetch(prompt))
        marks = self.tiers.checkpoints(prompt, hit.tokens)
        processors = sampling.make_processors(request.sampling, len(prompt))
        processors += [self._guard(job, make()) for make in request.logits_processors]
        sampler = sampling.make_sampler(request.sampling, self.engine.vocab_size)
        stop = self.stop + [list(s) for s in request.stop_token_ids if s]
        if self.solo is not None:
            self._handoff()  # company: the lone sequence joins the batch
        # The fast path keeps a plain KV cache: quantized KV and checkpoints take the batch.
        options = self.engine.cache_options
        plain = (marks is None or not options.checkpoint_every) and not options.kv_bits
        if not self.active and self.engine.fast_path and plain:
            self.solo_uids -= 1
            self.solo = Solo(
                self.model,
                uid=self.solo_uids,
                prompt=prompt,
                cache=hit.cache,
                cached=hit.tokens,
                max_tokens=job.max_tokens,
                sampler=sampler,
                processors=processors,
                stop=stop,
                prefill_step_size=self.engine.prefill_step_size,
                drafter=self.drafter,
                costs=self.costs,
                num_draft_tokens=self.engine.speculation.num_draft_tokens,
                stats=self.stats,
            )
            job.uid = self.solo.uid
        else:
            job.uid = self.batch.insert(
                prompt[hit.tokens :],
                max_tokens=job.max_tokens,
                cache=hit.cache if hit.cache is not None else self.tiers.fresh(),
                cached_tokens=prompt[: hit.tokens],
                sampler=sampler,
                processors=processors,
                stop=stop,
                checkpoints=None if marks is None else [m - hit.tokens for m in marks],
            )
        job.cached = hit.tokens
        job.detokenizer = mlxlm.streaming_detokenizer(self.engine.tokenizer)
        self.active[job.uid] = job

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
        solo = self.solo
        if solo is not None and uid == solo.uid:
            cache = solo.borrow(prompt[:best])
        else:
            cache = self.batch.borrow(uid, prompt[:best])
        if cache is None:
            return None
        self.cache.hits += 1
        return CacheHit(cache, best)

    def _guard(self, job: Job, processor: mlxlm.LogitsProcessor) -> mlxlm.LogitsProcessor:
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

    def _token_event(self, job: Job, r: mlxlm.BatchResponse) -> TokenEvent:
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
            self.tiers.kept(tokens, cache)
        except Exception:
            # Losing a cache entry costs prefill time later, never correctness.
            log.exception("could not keep a prompt cache")


def default_prefill_step() -> int:
    """Prompt tokens per prefill chunk on this machine's default MLX device."""
    on_cpu = mx.default_device().type == mx.cpu
    return _CPU_PREFILL_STEP if on_cpu else _GPU_PREFILL_STEP


def release_thread_streams() -> None:
    # MLX keeps a worker per stream; one left behind by an exited thread
    # aborts the process at exit ("terminate called without an active exception").
    gc.collect()
    mx.synchronize()
    mx.clear_streams()


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
