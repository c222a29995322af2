"""The single-stream fast path: one sequence decoded outside mlx-lm's BatchGenerator.

While only one request runs, `Solo` decodes it on a plain KV cache the way mlx-lm's
`generate_step` does (the next forward pass is queued before the current token is
read), without the batch's padding and bookkeeping; that is where speculative
decoding runs (engine/speculative.py). When a second request arrives, `handoff`
moves the sequence into the batch: its cache, the tokens it holds and what is left
to feed, with its own sampler and logits processors, so nothing is decoded twice and
a seeded request draws the same tokens it would have drawn in the batch.

    prefill (chunks) ─▶ first forward ─▶ decode: plain (pipelined) | speculative rounds
                                           └─ handoff ─▶ BatchGenerator.insert

Runs on the generation thread only.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, cast

import mlx.core as mx

from mlxctl.engine import mlxlm, speculative
from mlxctl.engine.mlxlm import LogitsProcessor, Sampler
from mlxctl.engine.sampling import SeededSampler
from mlxctl.engine.speculative import Drafter
from mlxctl.engine.stats import EngineStats

__all__ = ["Handoff", "Solo", "SoloResponse"]

# Speculation pauses (plain, pipelined steps) when it stops paying: for _PAUSE tokens
# when its rounds cost more time per token than plain steps (moving averages of the
# wall clock between steps) or its moving acceptance falls below _MIN_ACCEPTANCE, and
# for a couple of tokens when the drafter has nothing to propose.
_MIN_ACCEPTANCE = 0.3
_PAUSE = 16
_PAUSE_NO_DRAFT = 2
_COST_WEIGHT = 0.3


@dataclass
class SoloResponse:
    """One token, shaped like mlx-lm's batch response (`mlxlm.BatchResponse`)."""

    uid: int
    token: int
    logprobs: mx.array
    finish_reason: str | None = None
    prompt_cache: list[Any] | None = None
    all_tokens: list[int] | None = None


@dataclass
class Handoff:
    """What the batch needs to carry on: feed `tokens` after the `cached` ones in `cache`."""

    tokens: list[int]
    cache: list[Any]
    cached: list[int]
    max_tokens: int


class Solo:
    """One sequence: its cache, the tokens in it, and the token sampled but not yet fed."""

    def __init__(
        self,
        model: Any,
        *,
        uid: int,
        prompt: list[int],
        cache: list[Any] | None,
        cached: int,
        max_tokens: int,
        sampler: Sampler,
        processors: list[LogitsProcessor],
        stop: list[list[int]],
        prefill_step_size: int,
        drafter: Drafter | None,
        num_draft_tokens: int,
        stats: EngineStats,
    ) -> None:
        self.model = model
        self.uid = uid
        self.cache = cache if cache is not None else mlxlm.make_cache(model)
        self.fed = prompt[:cached]  # the tokens `cache` holds
        self.todo = prompt[cached:]  # prompt tokens still to feed (never empty at first)
        self.history = list(prompt)  # prompt + reply: what drafters look at
        self.max_tokens = max_tokens
        self.generated = 0
        self.sampler = sampler
        self.processors = processors
        self.stop = stop
        self.matcher = mlxlm.stop_matcher(stop)
        self.prefill_step_size = prefill_step_size
        self.stats = stats
        # Speculation needs no processor that keeps state, and (each round) a trimmable cache.
        spec = drafter is not None and num_draft_tokens > 0 and not processors
        self.drafter = drafter if spec else None
        self.k = num_draft_tokens
        self.acceptance = 1.0  # moving average of accepted / drafted
        self.pause = 2  # plain steps left before drafting again (first: measure plain)
        self.cost: dict[str, float | None] = {"plain": None, "spec": None}  # s per token
        self.last: tuple[float, str, int] | None = None  # (step began, mode, tokens)
        if self.drafter is not None:
            self.drafter.start(prompt)
        self.context = mx.array(prompt[:-1], dtype=mx.uint32) if processors else None
        self.pending: mx.array | None = None  # sampled, neither fed nor sent
        self.pending_logprobs: mx.array | None = None

    def step(self) -> tuple[int, list[SoloResponse]]:
        """(prompt chunks processed, tokens generated), like `mlxlm.Batch.step`."""
        if len(self.todo) > 1:
            n = min(self.prefill_step_size, len(self.todo) - 1)
            chunk, self.todo = self.todo[:n], self.todo[n:]
            self.model(mx.array(chunk, dtype=mx.uint32)[None], cache=self.cache)
            mx.eval([c.state for c in self.cache])
            self.fed += chunk
            return 1, []
        out: list[SoloResponse] = []
        began = time.perf_counter()
        self._measure(began)
        if self.pending is None:
            last, self.todo = self.todo, []
            self.pending, self.pending_logprobs = self._forward(mx.array(last, dtype=mx.uint32))
            self.fed += last
            if self.drafter is None:
                _async_eval(self.pending, self.pending_logprobs)
        if self.drafter is not None and self.pause == 0 and self._pays():
            mode = "spec"
            self._speculate(out)
        else:
            mode = "plain"
            self.pause = max(0, self.pause - 1)
            self._plain(out)
        self.last = (began, mode, len(out))
        return 0, out

    def _measure(self, now: float) -> None:
        """Fold the last decode step's time per token into its mode's moving average."""
        if self.last is None:
            return
        began, mode, tokens = self.last
        self.last = None
        if tokens:
            per = (now - began) / tokens
            old = self.cost[mode]
            self.cost[mode] = per if old is None else old + _COST_WEIGHT * (per - old)

    def _pays(self) -> bool:
        """False (and a pause) when speculative rounds have cost more per token than plain
        steps; the next round after the pause is measured afresh. Greedy requests only: a
        sampled one's draws depend on the path, which must not depend on the clock."""
        plain, spec = self.cost["plain"], self.cost["spec"]
        if plain is None or spec is None or spec <= plain:
            return True
        if isinstance(self.sampler, SeededSampler):
            return True
        self.pause, self.cost["spec"] = _PAUSE, None
        return False

    def handoff(self) -> tuple[list[SoloResponse], Handoff | None]:
        """Leave the fast path: the token already drawn is sent, the rest goes to the batch.

        None when that token ended the sequence.
        """
        out: list[SoloResponse] = []
        if self.pending is None:
            return out, Handoff(self.todo, self.cache, self.fed, self.max_tokens)
        token = _int(self.pending)
        if self._send(token, self._row(), out):
            return out, None
        left = self.max_tokens - self.generated
        return out, Handoff([token], self.cache, list(self.fed), left)

    def borrow(self, prefix: list[int]) -> list[Any] | None:
        """A copy of this sequence's KV cut to `prefix`, if it holds exactly that."""
        n = len(prefix)
        if self.pending is None or len(self.fed) < n or self.fed[:n] != prefix:
            return None
        if len(self.fed) > n and not mlxlm.can_trim_cache(self.cache):
            return None
        cache = copy.deepcopy(self.cache)
        mlxlm.trim_cache(cache, len(self.fed) - n)
        return cache

    # --- decoding -----------------------------------------------------------------

    def _plain(self, out: list[SoloResponse]) -> None:
        """Queue the next forward pass, then read the token it consumes (generate_step's order)."""
        assert self.pending is not None
        current, row = self.pending, self._row()
        self.pending, self.pending_logprobs = self._forward(current)
        _async_eval(self.pending, self.pending_logprobs)
        token = _int(current)
        self.fed.append(token)
        self._send(token, row, out)

    def _speculate(self, out: list[SoloResponse]) -> None:
        assert self.pending is not None and self.drafter is not None
        token = _int(self.pending)
        row = self._row()
        self.pending = None
        if self._send(token, row, out):
            return
        k = min(self.k, self.max_tokens - self.generated)
        # A sliding-window cache past its window cannot take drafts back: plain steps then.
        if k > 0 and mlxlm.can_trim_cache(self.cache, after=k + 1):
            proposal = self.drafter.propose(self.history, k, self.sampler)
        else:
            proposal = None
        if proposal is None:
            self.pause = _PAUSE_NO_DRAFT
            self.pending, self.pending_logprobs = self._forward(mx.array([token], mx.uint32))
            _async_eval(self.pending, self.pending_logprobs)
            self.fed.append(token)
            return
        k = proposal.count
        inputs = mx.concatenate([mx.array([token], mx.uint32), proposal.tokens])
        logits = self.model(inputs[None], cache=self.cache)[0]
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        position = self.generated
        n, following = speculative.verify(logprobs, proposal, self.sampler, position)
        drafted = speculative.ints(proposal.tokens)
        mlxlm.trim_cache(self.cache, k - n)
        self.fed += [token, *drafted[:n]]
        self.drafter.accepted(len(self.history), proposal, n)
        self.stats.add_speculation(drafted=k, accepted=n)
        self.acceptance = (self.acceptance + n / k) / 2
        if self.acceptance < _MIN_ACCEPTANCE:
            self.pause, self.acceptance = _PAUSE, _MIN_ACCEPTANCE
        for i in range(n):
            if self._send(drafted[i], logprobs[i], out):
                return
        self.pending, self.pending_logprobs = following, logprobs[n]

    def _forward(self, inputs: mx.array) -> tuple[mx.array, mx.array]:
        """Feed `inputs` (1-D); the next token (lazy, shape (1,)) and its logprobs row."""
        logits = self.model(inputs[None], cache=self.cache)[:, -1, :]
        if self.processors:
            # Not queued here: a grammar reads the last token first, then queues the pass
            # and computes its mask beside it (worker/structured.py).
            assert self.context is not None
            self.context = mx.concatenate([self.context, inputs.astype(mx.uint32)])
            for processor in self.processors:
                logits = processor(self.context, logits)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        return self.sampler(logprobs).astype(mx.uint32), logprobs[0]

    def _row(self) -> mx.array:
        assert self.pending_logprobs is not None
        return self.pending_logprobs

    def _send(self, token: int, logprobs: mx.array, out: list[SoloResponse]) -> bool:
        """Add one reply token to `out`; True when it ends the sequence."""
        self.generated += 1
        self.history.append(token)
        finish = "length" if self.generated >= self.max_tokens else None
        if self.matcher.advance(token):
            finish = "stop"
        response = SoloResponse(self.uid, token, logprobs, finish)
        if finish is not None:
            response.prompt_cache, response.all_tokens = self.cache, self.fed
        out.append(response)
        return finish is not None


def _int(array: mx.array) -> int:
    return int(cast(int, array.item()))


def _async_eval(*arrays: mx.array) -> None:
    mx.async_eval(*arrays)  # type: ignore[no-untyped-call]
