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
from mlxctl.engine.specgain import GainRule, RoundCosts
from mlxctl.engine.speculative import Drafter
from mlxctl.engine.stats import EngineStats

__all__ = ["Handoff", "Solo", "SoloResponse"]

# Prompt lookup drafts for free: after a round whose whole draft stood, the next may be
# k tokens longer (a copy stretch accepts long runs), up to this; a refusal sets it back.
_MAX_FREE_DRAFT = 12


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
class _Round:
    """A speculative round in flight: `token` (sent) and the drafts fed, logprobs queued."""

    token: int
    proposal: speculative.Proposal
    logprobs: mx.array  # (k + 1, vocab), lazy until the next step verifies it
    position: int  # the first draft's index in the reply (seeds a sampled request's draws)


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
        costs: RoundCosts | None = None,
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
        self.free = num_draft_tokens  # how many prompt lookup may draft next round
        # When to speculate (engine/specgain.py); a sampled request's rule reads no clock.
        self.costs = costs if costs is not None else RoundCosts()
        timed = not isinstance(sampler, SeededSampler)
        self.rule = GainRule(self.costs, num_draft_tokens, timed=timed)
        # The last decode step: (began, "plain" | "spec" | "none", kept, drafted).
        self.last: tuple[float, str, int, int] | None = None
        self.steady = False  # the last step was plain and so was the one before it
        if self.drafter is not None:
            self.drafter.start(prompt)
        self.context = mx.array(prompt[:-1], dtype=mx.uint32) if processors else None
        self.pending: mx.array | None = None  # sampled, neither fed nor sent
        self.pending_logprobs: mx.array | None = None
        self.unfed: tuple[mx.array, int] | None = None  # the first token: sent, not yet fed
        self.round: _Round | None = None  # queued last step, verified this one
        self._kept = 0  # drafts the last verified round kept

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
        if self.drafter is not None:
            self._measure(began)
        if self.unfed is not None:  # the first token went out last step: feed it now
            current, token = self.unfed
            self.unfed = None
            self.pending, self.pending_logprobs = self._forward(current)
            self.fed.append(token)
            if self.drafter is None:
                _async_eval(self.pending, self.pending_logprobs)
        elif self.pending is None and self.round is None:
            last, self.todo = self.todo, []
            self.pending, self.pending_logprobs = self._forward(mx.array(last, dtype=mx.uint32))
            self.fed += last
            if self.drafter is None:
                _async_eval(self.pending, self.pending_logprobs)
        if self.drafter is not None and (self.round is not None or self.rule.ready):
            self.last = (began, *self._speculate(out))
        else:
            self.rule.plain_step()
            self._plain(out)
            self.last = (began, "plain", 0, 0)
        return 0, out

    def _measure(self, now: float) -> None:
        """Add the last decode step's cost (step start to step start) and score its round."""
        if self.last is None:
            return
        began, mode, kept, drafted = self.last
        steady, self.steady = self.steady, mode == "plain"
        if mode == "plain" and steady:  # a plain step after a round is not pipelined yet
            self.costs.add_plain(now - began)
        elif mode == "spec":
            self.costs.add_round(kept, drafted, now - began)
            self.rule.round_done(kept, drafted)

    def handoff(self) -> tuple[list[SoloResponse], Handoff | None]:
        """Leave the fast path: the token already drawn is sent, the rest goes to the batch.

        None when that token ended the sequence.
        """
        out: list[SoloResponse] = []
        if self.round is not None and self._verify(out):
            return out, None
        if self.unfed is not None:
            left = self.max_tokens - self.generated
            return out, Handoff([self.unfed[1]], self.cache, list(self.fed), left)
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
        whole = self.pending is not None or self.unfed is not None  # the prompt is all in
        if not whole or len(self.fed) < n or self.fed[:n] != prefix:
            return None
        if len(self.fed) > n and not mlxlm.can_trim_cache(self.cache):
            return None
        cache = copy.deepcopy(self.cache)
        mlxlm.trim_cache(cache, len(self.fed) - n)
        return cache

    # --- decoding -----------------------------------------------------------------

    def _plain(self, out: list[SoloResponse]) -> None:
        """Queue the next forward pass, then read the token it consumes (generate_step's order);
        but the first token is sent before any pass is queued, and the last queues none."""
        assert self.pending is not None
        current, row = self.pending, self._row()
        if self.generated + 1 >= self.max_tokens:  # the last token: no pass after it
            self.pending = self.pending_logprobs = None
            self._send(_int(current), row, out)
            return
        if self.generated == 0:
            # The first token goes out before the next pass is queued: MLX's CPU queue holds
            # `async_eval` until most of a queued pass has run, which would delay it a step.
            token = _int(current)
            self.pending = self.pending_logprobs = None
            self.unfed = (current, token)
            self._send(token, row, out)
            return
        self.pending, self.pending_logprobs = self._forward(current)
        _async_eval(self.pending, self.pending_logprobs)
        token = _int(current)
        self.fed.append(token)
        self._send(token, row, out)

    def _speculate(self, out: list[SoloResponse]) -> tuple[str, int, int]:
        """Verify the round in flight, send its tokens and the next one, then queue the next
        round (or a plain forward pass) before the host handles them: the host's work
        overlaps the model's, as in plain steps. (What it was: "spec" when a round was
        verified, else "none"; kept; drafted.)"""
        assert self.drafter is not None
        verified = self.round
        if verified is not None and self._verify(out):
            return "spec", self._kept, verified.proposal.count
        done = ("spec", self._kept, verified.proposal.count) if verified else ("none", 0, 0)
        assert self.pending is not None
        token = _int(self.pending)
        row = self._row()
        self.pending = None
        if self._send(token, row, out):
            return done
        proposal = None
        if self.rule.ready:
            room = self.max_tokens - self.generated
            k, free = min(self.k, room), min(self.free, room)
            # A sliding-window cache past its window cannot take drafts back: plain steps.
            if k > 0 and mlxlm.can_trim_cache(self.cache, after=free + 1):
                proposal = self.drafter.propose(self.history, k, self.sampler, free=free)
            if proposal is None:
                self.free = self.k
                self.rule.nothing_proposed()
        if proposal is None:
            self.pending, self.pending_logprobs = self._forward(mx.array([token], mx.uint32))
            _async_eval(self.pending, self.pending_logprobs)
            self.fed.append(token)
            return done
        inputs = mx.concatenate([mx.array([token], mx.uint32), proposal.tokens])
        logits = self.model(inputs[None], cache=self.cache)[0]
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        _async_eval(logprobs, proposal.tokens)
        self.round = _Round(token, proposal, logprobs, self.generated)
        return done

    def _verify(self, out: list[SoloResponse]) -> bool:
        """Settle the round in flight: keep the drafts that stand, send them, and leave the
        target's next token pending. True when a kept draft ended the sequence."""
        assert self.round is not None and self.drafter is not None
        verified, self.round = self.round, None
        proposal, logprobs = verified.proposal, verified.logprobs
        k = proposal.count
        n, following = speculative.verify(logprobs, proposal, self.sampler, verified.position)
        self._kept = n
        if n < k:
            self.free = self.k
        elif proposal.free and k == self.free:
            self.free = max(self.k, min(self.free + self.k, _MAX_FREE_DRAFT))
        drafted = speculative.ints(proposal.tokens)
        mlxlm.trim_cache(self.cache, k - n)
        self.fed += [verified.token, *drafted[:n]]
        self.drafter.accepted(len(self.history), proposal, n)
        self.stats.add_speculation(drafted=k, accepted=n)
        for i in range(n):
            if self._send(drafted[i], logprobs[i], out):
                return True
        self.pending, self.pending_logprobs = following, logprobs[n]
        return False

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
            response.prompt_cache, response.all_tokens = self.cache, self.fed  # compacted on store
        out.append(response)
        return finish is not None


def _int(array: mx.array) -> int:
    return int(cast(int, array.item()))


def _async_eval(*arrays: mx.array) -> None:
    mx.async_eval(*arrays)  # type: ignore[no-untyped-call]
