"""Speculative decoding: who proposes the next tokens, and how the target checks them.

A drafter proposes up to k tokens after the sequence so far: `PromptLookup` finds the
newest earlier occurrence of the last n-gram (n = 3, 2, 1) in the prompt and reply
and proposes what followed it (no second model; the win when the answer repeats the
context), `DraftModel` runs a small model of the same vocabulary k steps ahead.
`verify` takes the target's logprobs at the k + 1 positions (the last real token, then
each draft) and decides how many drafts stand:

- greedy: a draft stands while it is the target's argmax, so the output is the plain
  greedy output token for token;
- sampled: standard rejection sampling (Leviathan et al. 2023): draft d with draft
  probability q(d) stands with probability min(1, p(d) / q(d)); the first refused one
  is replaced by a draw from max(0, p - q) renormalised; when all stand, one more token
  is drawn from p. Prompt lookup proposes deterministically (q is one point), so a
  draft stands with probability p(d). The draws use keys from the request's seed and
  the token position, so a seeded request that runs alone repeats itself.

Runs on the generation thread only (engine/solo.py calls it).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlx.core as mx

from mlxctl.engine import mlxlm
from mlxctl.engine.mlxlm import Sampler
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.sampling import SeededSampler
from mlxctl.errors import InvalidInput

__all__ = [
    "DraftModel",
    "Drafter",
    "PromptLookup",
    "Speculation",
    "ints",
    "load_drafter",
    "unavailable",
    "verify",
]

# The longest n-gram prompt lookup matches; shorter ones are tried when it finds none.
_MAX_NGRAM = 3
# A 1-gram match proposes too often on free text: the shortest n-gram used.
_MIN_NGRAM = 2
_GOLDEN = 0x9E3779B97F4A7C15  # mixes a position into a seed


@dataclass(frozen=True)
class Speculation:
    """How a model speculates: a draft model folder and/or prompt lookup, k tokens a round."""

    num_draft_tokens: int = 3
    draft_model: Path | None = None
    prompt_lookup: bool = False

    @property
    def enabled(self) -> bool:
        return self.num_draft_tokens > 0 and (self.draft_model is not None or self.prompt_lookup)


@dataclass
class Proposal:
    """Draft tokens (an array, maybe still lazy) and, from a sampled draft model, their q rows."""

    tokens: mx.array  # (k,) uint32
    probs: mx.array | None  # (k, vocab) draft probabilities; None: deterministic proposal
    count: int
    free: bool = False  # drafted at no cost (prompt lookup): the next one may be longer


class Drafter(ABC):
    """Proposes tokens for one sequence at a time; `start` it per sequence."""

    def start(self, prompt: list[int]) -> None:  # noqa: B027 - a hook; no-op by default
        """A new sequence begins with `prompt` (its KV may be reused from the last one)."""

    @abstractmethod
    def propose(
        self, history: list[int], k: int, sampler: Sampler, *, free: int | None = None
    ) -> Proposal | None:
        """Up to `k` tokens likely to follow `history` (prompt + reply), or None; a drafter
        whose drafts cost nothing (prompt lookup) may propose up to `free` instead."""

    def accepted(self, history_len: int, proposal: Proposal, n: int) -> None:  # noqa: B027
        """The target kept `n` of `proposal`'s tokens after `history_len` tokens."""


class PromptLookup(Drafter):
    """n-gram prompt lookup: an index of where each 1..3-gram last ended, kept as tokens come."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, ...], int] = {}
        self._indexed = 0

    def start(self, prompt: list[int]) -> None:
        self._seen.clear()
        self._indexed = 0

    def propose(
        self, history: list[int], k: int, sampler: Sampler, *, free: int | None = None
    ) -> Proposal | None:
        k = free or k
        end = len(history)
        # Index every n-gram ending before the last token: the last one is the query.
        for i in range(self._indexed, end - 1):
            for n in range(1, _MAX_NGRAM + 1):
                if i + 1 >= n:
                    self._seen[tuple(history[i + 1 - n : i + 1])] = i + 1
        self._indexed = max(self._indexed, end - 1)
        for n in range(_MAX_NGRAM, _MIN_NGRAM - 1, -1):
            if end < n:
                continue
            follows = self._seen.get(tuple(history[end - n :]))
            if follows is not None:
                # A continuation that runs into the end repeats with the period found.
                period = end - follows
                draft = [history[follows + i % period] for i in range(k)]
                return Proposal(mx.array(draft, dtype=mx.uint32), None, k, True)
        return None


class DraftModel(Drafter):
    """A small model of the target's vocabulary, run k steps ahead on its own KV cache.

    Its cache follows the sequence lazily: `propose` first feeds whatever of the history
    it has not seen (the prompt, the target's corrections), so it can sit out rounds.
    """

    def __init__(self, model: Any, *, prefill_step_size: int) -> None:
        self.model = model
        self.prefill_step_size = prefill_step_size
        self.cache: list[Any] = mlxlm.make_cache(model)
        self.tokens: list[int] = []  # what `cache` holds

    def start(self, prompt: list[int]) -> None:
        # The previous sequence's KV serves the shared prefix (an agent's next turn).
        keep = common_prefix(self.tokens, prompt)
        if keep < len(self.tokens):
            if keep == 0 or not mlxlm.can_trim_cache(self.cache):
                self.cache, self.tokens = mlxlm.make_cache(self.model), []
                return
            mlxlm.trim_cache(self.cache, len(self.tokens) - keep)
            del self.tokens[keep:]

    def propose(
        self, history: list[int], k: int, sampler: Sampler, *, free: int | None = None
    ) -> Proposal | None:
        if len(self.tokens) > len(history) or self.tokens != history[: len(self.tokens)]:
            self.start(history)  # out of step (a handoff): start over from what agrees
        if len(self.tokens) == len(history):  # it has seen it all: run the last token again
            self.start(history[:-1])
        todo = history[len(self.tokens) :]
        if not todo:
            return None
        while len(todo) > self.prefill_step_size:
            chunk, todo = todo[: self.prefill_step_size], todo[self.prefill_step_size :]
            self.model(mx.array(chunk, dtype=mx.uint32)[None], cache=self.cache)
            mx.eval([c.state for c in self.cache])
            self.tokens += chunk
        self.tokens += todo
        seeded = sampler if isinstance(sampler, SeededSampler) else None
        key = _key(seeded.seed ^ 1, len(history)) if seeded is not None else None
        y = mx.array(todo, dtype=mx.uint32)
        drafts: list[mx.array] = []
        probs: list[mx.array] = []
        # One lazy graph for all k steps: a single evaluation, in verify, for the round.
        for _ in range(k):
            logits = self.model(y[None], cache=self.cache)[0, -1:, :]
            if seeded is None or key is None:
                y = mx.argmax(logits, axis=-1).astype(mx.uint32)
            else:
                key, draw = mx.random.split(key)
                shaped = seeded.filter(logits - mx.logsumexp(logits, axis=-1, keepdims=True))
                probs.append(mx.softmax(shaped, axis=-1))
                y = mx.random.categorical(shaped, key=draw).astype(mx.uint32)
            drafts.append(y)
        return Proposal(mx.concatenate(drafts), mx.concatenate(probs) if probs else None, k)

    def accepted(self, history_len: int, proposal: Proposal, n: int) -> None:
        # The cache fed drafts 1..k-1; those past the n kept ones go.
        fed = proposal.count - 1
        keep = min(fed, n)
        mlxlm.trim_cache(self.cache, fed - keep)
        self.tokens += ints(proposal.tokens)[:keep]


class Chain(Drafter):
    """Prompt lookup first (free), the draft model when the context has no match."""

    def __init__(self, *drafters: Drafter) -> None:
        self.drafters = drafters
        self._last: Drafter | None = None

    def start(self, prompt: list[int]) -> None:
        for drafter in self.drafters:
            drafter.start(prompt)

    def propose(
        self, history: list[int], k: int, sampler: Sampler, *, free: int | None = None
    ) -> Proposal | None:
        for drafter in self.drafters:
            proposal = drafter.propose(history, k, sampler, free=free)
            if proposal is not None:
                self._last = drafter
                return proposal
        self._last = None
        return None

    def accepted(self, history_len: int, proposal: Proposal, n: int) -> None:
        if self._last is not None:
            self._last.accepted(history_len, proposal, n)


def verify(
    logprobs: mx.array, proposal: Proposal, sampler: Sampler, position: int
) -> tuple[int, mx.array]:
    """How many of `proposal`'s drafts stand, and the token after them (lazy, shape (1,)).

    `logprobs` are the target's (k + 1, vocab) log-softmax rows: row i is the
    distribution after the last real token and drafts 1..i. `position` is the index
    of the first draft in the reply (it seeds a sampled request's draws). Evaluates.
    """
    drafts = proposal.tokens
    k = proposal.count
    if not isinstance(sampler, SeededSampler):
        targets = mx.argmax(logprobs, axis=-1)
        mx.eval(targets, drafts)
        chosen, proposed = ints(targets), ints(drafts)
        n = 0
        while n < k and chosen[n] == proposed[n]:
            n += 1
        return n, mx.array(chosen[n : n + 1], dtype=mx.uint32)  # read now: no second sync
    p = mx.softmax(sampler.filter(logprobs), axis=-1)
    q = proposal.probs
    if q is None:
        q = mx.zeros((k, p.shape[-1]), dtype=p.dtype)
        q = mx.put_along_axis(q, drafts[:, None].astype(mx.int32), mx.array(1.0, p.dtype), axis=-1)
    rows = mx.arange(k)
    p_d = p[rows, drafts]
    q_d = q[rows, drafts]
    key_accept, key_draw = mx.random.split(_key(sampler.seed, position))
    stands = mx.random.uniform(shape=(k,), key=key_accept) * q_d < p_d
    residual = mx.concatenate([mx.maximum(p[:k] - q, 0.0), p[k:]])
    empty = residual.sum(axis=-1, keepdims=True) <= 0
    residual = mx.where(empty, p, residual)  # p == q exactly: nothing to correct
    draws = mx.random.categorical(mx.log(residual), key=key_draw)
    mx.eval(stands, draws, drafts)
    verdicts = cast(list[bool], stands.tolist())
    n = 0
    while n < k and verdicts[n]:
        n += 1
    return n, draws[n : n + 1].astype(mx.uint32)


def ints(array: mx.array) -> list[int]:
    """A 1-D token array as Python ints (evaluates it)."""
    return [int(t) for t in cast(list[int], array.tolist())]


def _key(seed: int, position: int) -> mx.array:
    return mx.random.key((seed + _GOLDEN * (position + 1)) % (1 << 64))


def unavailable(kv_bits: int | None, checkpointing: bool) -> str | None:
    """Why a model loaded so cannot speculate (None: it can). Speculation runs on the
    single-stream fast path, which keeps a plain KV cache it can trim drafts from."""
    if kv_bits:
        return (
            "kv_bits quantizes the KV cache, and speculation runs on the fast path's plain "
            "cache: drop kv_bits to speculate"
        )
    if checkpointing:
        return (
            "this model keeps prompt checkpoints (a hybrid or sliding-window cache), which "
            "run on the batch path: a worker started with --checkpoint-every 0 speculates (a "
            "sliding-window model inside its window; a hybrid one cannot take drafts back)"
        )
    return None


def load_drafter(spec: Speculation, vocab_size: int, *, prefill_step_size: int) -> Drafter | None:
    """The drafter `spec` asks for, its draft model loaded (on the generation thread)."""
    if not spec.enabled:
        return None
    drafters: list[Drafter] = [PromptLookup()] if spec.prompt_lookup else []
    if spec.draft_model is not None:
        config = json.loads((spec.draft_model / "config.json").read_text())
        vocab = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
        if vocab != vocab_size:
            raise InvalidInput(
                f"draft model {spec.draft_model.name} has a vocabulary of {vocab} tokens, "
                f"the model {vocab_size}",
                hint="a draft model must share its target's tokenizer",
            )
        model, _ = mlxlm.load(spec.draft_model)
        drafters.append(DraftModel(model, prefill_step_size=prefill_step_size))
    return drafters[0] if len(drafters) == 1 else Chain(*drafters)
