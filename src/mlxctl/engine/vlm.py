"""The vision engine: an mlx-vlm model on the host's thread (engine/host.py).

    worker (HTTP side)                            vision thread (all MLX work)
    template text + image bytes ─ GenerationRequest.media ─▶ processor: image tokens,
                                                             pixel values
                                                        ─▶ mlx-vlm generate_step, a token
                                                           per step ─▶ TokenEvents

mlx-vlm (the library made for MLX vision-language models; `mlxctl[vision]`) is imported
here only. The processor runs on this thread because it returns MLX arrays; it expands
each image placeholder of the rendered prompt into the image's patch tokens, and the
request's `prompt_tokens` become those expanded ids (usage counts them). Sampling,
logits processors (structured output, forced tool calls), stop sequences and logprobs
are mlxctl's own, as in the mlx-lm engine.

One request decodes at a time (`max_batch` 1): mlx-vlm 0.7's `BatchGenerator` batches
prompts it prepares itself, with no per-request logits processors, so it cannot take
the worker's requests as they are; others wait in the queue.

The KV cache of the last request is kept: the next one starts from the tokens they
share when it shows the same images (by digest: every image's placeholder tokens are
alike) and adds only text after them; the conversation's next turn, image included,
prefills only its new words (`cached_tokens`). Qwen-style mRoPE positions are primed
from the full prompt first, as mlx-vlm's own prompt cache does.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxctl.engine import mlxlm, sampling
from mlxctl.engine.checks import ContextOverflow
from mlxctl.engine.generator import release_thread_streams
from mlxctl.engine.host import EngineHost
from mlxctl.engine.outbox import Job, Outbox
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.types import TokenEvent
from mlxctl.errors import Unavailable

__all__ = ["VisionEngine", "VisionInput"]

log = logging.getLogger(__name__)

_CONTEXT_KEYS = ("max_position_embeddings", "max_sequence_length", "seq_length")
_FALLBACK_CONTEXT = 4096


@dataclass(frozen=True)
class VisionInput:
    """What the processor needs besides the token ids: the rendered prompt text (with
    one placeholder per image) and the images' encoded bytes (PNG, JPEG, ...)."""

    text: str
    images: tuple[bytes, ...]


class VisionEngine(EngineHost["_Vision"]):
    """Serves one vision-language model; `start()` loads it on its thread."""

    kind = "vision"
    thread_name = "mlxctl-vision"

    def __init__(self, model_path: Path | str, *, max_queue: int = 64) -> None:
        super().__init__(model_path, max_batch=1, max_queue=max_queue)
        self.tokenizer: mlxlm.TokenizerWrapper

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "engine": "mlx-vlm"}

    def _prepare(self) -> None:
        super()._prepare()
        try:
            import mlx_vlm  # noqa: F401
        except ImportError:
            raise Unavailable(
                f"'{self.model_path.name}' is a vision-language model; serving it needs mlx-vlm.",
                hint="Install it with: pip install 'mlxctl[vision]'",
            ) from None

    def _load(self, outbox: Outbox) -> _Vision:
        from mlx_vlm import utils as vlm_utils

        config = json.loads((self.model_path / "config.json").read_text())
        model, processor = vlm_utils.load(str(self.model_path))
        self.tokenizer = mlxlm.load_tokenizer(self.model_path)
        self.context_length = _context_length(config)
        self.vocab_size = int(_config_value(config, "vocab_size") or len(self.tokenizer))
        self.eos_token_ids = {int(t) for t in self.tokenizer.eos_token_ids}
        return _Vision(self, outbox, model, processor)

    def _thread_exit(self) -> None:
        release_thread_streams()


@dataclass(eq=False)
class _Run:
    job: Job
    steps: Iterator[tuple[mx.array, mx.array]]
    stops: list[list[int]]
    history: list[int]  # prompt + generated tokens
    digests: tuple[str, ...]
    cache: list[Any]


@dataclass(frozen=True)
class _Kept:
    """The last request's KV cache: the tokens it holds and the images among them."""

    tokens: list[int]
    digests: tuple[str, ...]
    cache: list[Any]


class _Vision:
    """The backend on the vision thread: one running request and its token generator."""

    def __init__(self, engine: VisionEngine, out: Outbox, model: Any, processor: Any) -> None:
        self.engine = engine
        self.out = out
        self.model = model
        self.processor = processor
        self.run: _Run | None = None
        self.kept: _Kept | None = None
        names = ("image_token_id", "image_token_index", "video_token_id")
        found = [getattr(model.config, name, None) for name in names]
        self.media_ids = {value for value in found if isinstance(value, int)}

    def admit(self, job: Job) -> bool:
        if self.run is not None:
            return False
        from mlx_vlm.generate.ar import generate_step
        from mlx_vlm.utils import prepare_inputs

        request = job.request
        media = request.media if isinstance(request.media, VisionInput) else None
        text = media.text if media else self.engine.tokenizer.decode(request.prompt_tokens)
        images = [_image(data) for data in media.images] if media else []
        inputs = prepare_inputs(self.processor, images=images or None, prompts=text)  # type: ignore[no-untyped-call]
        ids: mx.array = inputs.pop("input_ids")
        pixels = inputs.pop("pixel_values", None)
        mask = inputs.pop("attention_mask", None)
        ids_list: list[int] = ids[0].tolist()  # type: ignore[assignment]
        prompt = [int(t) for t in ids_list]
        if len(prompt) >= self.engine.context_length:
            raise ContextOverflow(len(prompt), self.engine.context_length)
        request.prompt_tokens = prompt  # the image tokens count as prompt tokens
        job.max_tokens = min(job.max_tokens, self.engine.context_length - len(prompt))
        digests = tuple(hashlib.sha256(data).hexdigest() for data in media.images) if media else ()
        cache, reused = self._reuse(prompt, digests, ids, mask, inputs)
        if reused:
            ids, pixels, mask = ids[:, reused:], None, None
        job.cached = reused
        params = request.sampling
        processors = sampling.make_processors(params, len(prompt))
        processors += [make() for make in request.logits_processors]
        steps = generate_step(
            ids,
            self.model,
            pixels,
            mask,
            max_tokens=job.max_tokens,
            sampler=sampling.make_sampler(params, self.engine.vocab_size),
            logits_processors=processors,
            prompt_cache=cache,
            **inputs,
        )
        eos = [[t] for t in sorted(self.engine.eos_token_ids)]
        stops = eos + [list(s) for s in request.stop_token_ids if s]
        job.uid = 0
        job.detokenizer = mlxlm.streaming_detokenizer(self.engine.tokenizer)
        self.run = _Run(job, steps, stops, list(prompt), digests, cache)
        return True

    def _reuse(
        self,
        prompt: list[int],
        digests: tuple[str, ...],
        ids: mx.array,
        mask: mx.array | None,
        inputs: dict[str, Any],
    ) -> tuple[list[Any], int]:
        """The KV cache to start from and how many prompt tokens it already holds."""
        from mlx_vlm.generate.dispatch import (
            _prefix_cache_trim_amount,
            _prime_cached_prefix_rope_state,
        )
        from mlx_vlm.models.cache import make_prompt_cache

        kept, self.kept = self.kept, None
        if kept is not None and kept.digests == digests:
            shared = common_prefix(kept.tokens, prompt)
            drop = _prefix_cache_trim_amount(kept.cache, shared)
            text_after = not self.media_ids.intersection(prompt[shared:])
            usable = 0 < shared < len(prompt) and drop is not None and text_after
            # Priming sets the model's mRoPE state (and position ids in `inputs`).
            if usable and _prime_cached_prefix_rope_state(self.model, ids, mask, inputs):
                for layer in kept.cache:
                    if drop:
                        layer.trim(drop)
                return kept.cache, shared
        return make_prompt_cache(self.model.language_model), 0

    def step(self) -> None:
        run = self.run
        if run is None:
            return
        job = run.job
        token_array, logprobs = next(run.steps)
        token = int(token_array)
        run.history.append(token)
        now = time.perf_counter()
        if job.first_token is None:
            job.first_token = now
        stopped = any(run.history[-len(s) :] == s for s in run.stops)
        ended = stopped or job.generated + 1 >= job.max_tokens
        detokenizer = job.detokenizer
        if not stopped:
            detokenizer.add_token(token)
        if ended:
            detokenizer.finalize()
        params = job.request.sampling
        logprob: float | None = None
        top: tuple[tuple[int, float], ...] = ()
        if params.logprobs or params.top_logprobs:
            row = sampling.logprobs_row(logprobs)
            logprob = float(row[token]) if params.logprobs else None
            top = sampling.top_logprobs(row, params.top_logprobs)
        job.generated += 1
        self.out.stats.add_tokens(generated=1)
        self.out.send(job, TokenEvent(token, detokenizer.last_segment, logprob, top))
        if ended:
            self.run = None
            self._keep(run)
            self.out.finish(job, "stop" if stopped else "length", now=now)

    def _keep(self, run: _Run) -> None:
        """Keep a finished request's cache for the next; the tokens it holds are its offset."""
        held = max((int(getattr(c, "offset", 0) or 0) for c in run.cache), default=0)
        if 0 < held <= len(run.history):
            self.kept = _Kept(run.history[:held], run.digests, run.cache)

    def cancel(self, job: Job) -> None:
        if self.run is not None and self.run.job is job:
            self.run = None

    def reset(self) -> None:
        self.run = None
        self.kept = None

    def publish(self, *, force: bool) -> None:
        if not force:
            return
        memory = {
            "active": mx.get_active_memory(),
            "peak": mx.get_peak_memory(),
            "cache": mx.get_cache_memory(),
        }
        self.out.stats.publish(memory=memory, prompt_cache={})

    def close(self) -> None:
        self.run = self.kept = None
        del self.model
        mx.clear_cache()


def _image(data: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _config_value(config: dict[str, Any], key: str) -> Any:
    value = config.get(key)
    if value is None and isinstance(config.get("text_config"), dict):
        value = config["text_config"].get(key)
    return value


def _context_length(config: dict[str, Any]) -> int:
    for key in _CONTEXT_KEYS:
        value = _config_value(config, key)
        if isinstance(value, int) and value > 0:
            return value
    return _FALLBACK_CONTEXT
