"""`SamplingParams` applied to one logits row in numpy, for engines that hand us raw logits.

The llama.cpp engine reads the last token's logits after each decode and samples here,
so every request keeps its own seed, penalties and bias, exactly as the MLX engine does:
bias → repetition penalty (last `REPETITION_CONTEXT` tokens) → frequency/presence
(generated tokens) → caller processors → temperature, top-k, top-p, min-p.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from mlxctl.engine.sampling import REPETITION_CONTEXT
from mlxctl.engine.types import SamplingParams

__all__ = ["NumpySampler", "Row", "RowProcessor", "row_processor"]

Row = np.ndarray[Any, np.dtype[np.float32]]
# (all tokens so far, logits row) -> logits row
RowProcessor = Callable[[list[int], Row], Row]


class NumpySampler:
    """Picks the next token of one sequence; `history` is prompt + generated tokens."""

    def __init__(
        self,
        params: SamplingParams,
        prompt_len: int,
        processors: list[RowProcessor] | None = None,
    ) -> None:
        self.params = params
        self.prompt_len = prompt_len
        self.processors = processors or []
        self.rng = np.random.default_rng(params.seed)
        bias = params.logit_bias
        self._bias_ids = np.array(list(bias), dtype=np.int64)
        self._bias = np.array(list(bias.values()), dtype=np.float32)

    def __call__(self, logits: Row, history: list[int]) -> tuple[int, Row | None]:
        """(token, log-probabilities row or None when the request asked for none)."""
        p = self.params
        row = np.array(logits, dtype=np.float32)
        if self._bias_ids.size:
            row[self._bias_ids] += self._bias
        if p.repetition_penalty is not None and p.repetition_penalty != 1.0 and history:
            recent = np.unique(np.array(history[-REPETITION_CONTEXT:], dtype=np.int64))
            picked = row[recent]
            row[recent] = np.where(
                picked < 0, picked * p.repetition_penalty, picked / p.repetition_penalty
            )
        generated = history[self.prompt_len :]
        if (p.frequency_penalty or p.presence_penalty) and generated:
            counts = np.bincount(np.array(generated), minlength=row.shape[0])[: row.shape[0]]
            row -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0)
        for processor in self.processors:
            row = np.asarray(processor(history, row), dtype=np.float32)
        logprobs = _log_softmax(row) if p.logprobs or p.top_logprobs else None
        return self._pick(row), logprobs

    def _pick(self, row: Row) -> int:
        p = self.params
        if p.temperature == 0:
            return int(np.argmax(row))
        row = row / p.temperature
        if 0 < p.top_k < row.shape[0]:
            kth = np.partition(row, -p.top_k)[-p.top_k]
            row = np.where(row < kth, -np.inf, row)
        probs = np.exp(row - np.max(row))
        probs /= probs.sum()
        if p.min_p > 0:
            probs = np.where(probs < p.min_p * probs.max(), 0.0, probs)
        if p.top_p < 1:
            order = np.argsort(-probs)
            cumulative = np.cumsum(probs[order])
            # Keep the smallest prefix whose mass reaches top_p (at least one token).
            cut = int(np.searchsorted(cumulative, p.top_p)) + 1
            keep = np.zeros_like(probs)
            keep[order[:cut]] = probs[order[:cut]]
            probs = keep
        probs /= probs.sum()
        return int(self.rng.choice(probs.shape[0], p=probs))


def row_processor(processor: Callable[[Any, Any], Any]) -> RowProcessor:
    """An mlx-lm logits processor (mx arrays, (1, vocab) logits) on a numpy row."""

    def apply(history: list[int], row: Row) -> Row:
        out = processor(mx.array(history), mx.array(row)[None])
        return np.array(out, dtype=np.float32).reshape(-1)

    return apply


def _log_softmax(row: Row) -> Row:
    shifted = row - np.max(row)
    out: Row = shifted - np.log(np.exp(shifted).sum())
    return out
