"""SamplingParams → an mlx-lm sampler and logits processors, one set per request.

Semantics (OpenAI-style, as vLLM applies them):

- `temperature` 0 is greedy. Otherwise logits are divided by the temperature
  first, then top-k, top-p and min-p filter what is left, then one token is drawn.
- Each sampled request draws from its own PRNG key chain, seeded by
  `SamplingParams.seed` (a random seed when None). The n-th token uses the n-th
  split of that key, so the same seed and prompt give the same tokens whatever
  else shares the batch.
- `logit_bias` is added to the raw logits; `repetition_penalty` (HF-style,
  multiplicative) looks at the last `REPETITION_CONTEXT` tokens, prompt included;
  `frequency_penalty` and `presence_penalty` count generated tokens only.

`validate` is pure Python and safe anywhere; `make_sampler` and
`make_processors` build MLX arrays and run on the generation thread only.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import mlx.core as mx
import numpy as np

from mlxctl.engine import mlxlm
from mlxctl.engine.mlxlm import LogitsProcessor, Sampler
from mlxctl.engine.types import SamplingParams

__all__ = [
    "REPETITION_CONTEXT",
    "SeededSampler",
    "logprobs_row",
    "make_processors",
    "make_sampler",
    "top_logprobs",
    "validate",
]

# mlx-lm server's default window for the repetition penalty.
REPETITION_CONTEXT = 20


def validate(params: SamplingParams, vocab_size: int) -> None:
    """Raise ValueError for parameters the engine cannot honour; no MLX work."""
    if not math.isfinite(params.temperature) or params.temperature < 0:
        raise ValueError(f"temperature must be >= 0, not {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {params.top_p}")
    if params.top_k < 0:
        raise ValueError(f"top_k must be >= 0, not {params.top_k}")
    if not 0 <= params.min_p <= 1:
        raise ValueError(f"min_p must be in [0, 1], not {params.min_p}")
    penalty = params.repetition_penalty
    if penalty is not None and not (math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"repetition_penalty must be > 0, not {penalty}")
    for name in ("frequency_penalty", "presence_penalty"):
        if not math.isfinite(getattr(params, name)):
            raise ValueError(f"{name} must be a finite number")
    if not 0 <= params.top_logprobs <= vocab_size:
        raise ValueError(f"top_logprobs must be in [0, {vocab_size}], not {params.top_logprobs}")
    for token, bias in params.logit_bias.items():
        if not 0 <= token < vocab_size:
            raise ValueError(
                f"logit_bias token {token} is outside the vocabulary (0..{vocab_size - 1})"
            )
        if not math.isfinite(bias):
            raise ValueError(f"logit_bias for token {token} must be finite")


def make_sampler(params: SamplingParams, vocab_size: int) -> Sampler:
    """The sampler for one request: mlx-lm's shared greedy sampler at temperature 0.

    Greedy requests share one sampler object, so an all-greedy batch samples in
    one call; seeded samplers are per request and run row by row.
    """
    if params.temperature == 0:
        return mlxlm.greedy_sampler
    seed = params.seed if params.seed is not None else secrets.randbits(64)
    return SeededSampler(params, vocab_size, seed % (1 << 64))


class SeededSampler:
    """A sampled request's sampler: `filter` shapes the distribution, `__call__` draws.

    Speculative decoding (engine/speculative.py) reads `filter` and `seed` to run
    rejection sampling against the same distribution this sampler draws from.
    """

    def __init__(self, params: SamplingParams, vocab_size: int, seed: int) -> None:
        self.seed = seed
        self._key = mx.random.key(seed)
        self._inv_temp = 1.0 / params.temperature
        self._top_k = params.top_k if 0 < params.top_k < vocab_size else 0
        self._top_p = params.top_p
        self._min_p = params.min_p

    def filter(self, logprobs: mx.array) -> mx.array:
        """Logits of the distribution drawn from: temperature, then top-k, top-p, min-p."""
        logits = logprobs * self._inv_temp
        if self._top_k:
            logits = mlxlm.apply_top_k(logits, self._top_k)
        if self._top_p < 1.0:
            logits = mlxlm.apply_top_p(logits, self._top_p)
        if self._min_p > 0.0:
            logits = mlxlm.apply_min_p(logits, self._min_p)
        return logits

    def __call__(self, logprobs: mx.array) -> mx.array:
        self._key, draw = mx.random.split(self._key)
        return mx.random.categorical(self.filter(logprobs), key=draw)


def make_processors(params: SamplingParams, prompt_len: int) -> list[LogitsProcessor]:
    """Logits processors for one request whose prompt is `prompt_len` tokens long.

    mlx-lm hands each processor every token in the sequence's cache (prompt, then
    generated); `prompt_len` tells the penalties where generation starts.
    """
    processors: list[LogitsProcessor] = list(
        mlxlm.make_logits_processors(
            logit_bias=dict(params.logit_bias) or None,
            repetition_penalty=params.repetition_penalty,
            repetition_context_size=REPETITION_CONTEXT,
        )
    )
    frequency = params.frequency_penalty
    presence = params.presence_penalty
    if frequency or presence:

        def penalize(tokens: mx.array, logits: mx.array) -> mx.array:
            generated = tokens[prompt_len:]
            if generated.size == 0:
                return logits
            counts = mx.zeros((logits.shape[-1],), dtype=logits.dtype).at[generated].add(1)
            return logits - frequency * counts - presence * (counts > 0)

        processors.append(penalize)
    return processors


def logprobs_row(row: mx.array) -> np.ndarray[Any, Any]:
    """A numpy view of one evaluated logprobs row (the batch step evaluated it: no MLX sync)."""
    if row.dtype == mx.bfloat16:
        # numpy has no bfloat16; this one conversion does cost a sync.
        row = row.astype(mx.float32)
    return np.asarray(row)


def top_logprobs(row: np.ndarray[Any, Any], k: int) -> tuple[tuple[int, float], ...]:
    """The `k` most likely (token, logprob) pairs, most likely first."""
    if k <= 0:
        return ()
    k = min(k, row.shape[-1])
    best = np.argpartition(-row, k - 1)[:k]
    best = best[np.argsort(-row[best], kind="stable")]
    return tuple((int(i), float(row[i])) for i in best)
