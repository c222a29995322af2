"""When speculation pays: an expected-gain rule that a loaded machine does not fool.

A speculative round that keeps n of its k drafts sends n + 1 tokens for the price of
one round; a plain (pipelined) step sends one. Each round is scored

    gain = (n + 1) × cost of a plain step / cost of a round that kept n

with costs that move slowly and a count that moves fast. The costs are this model's
(`RoundCosts`, kept across requests): the lower quartile of the recent wall times of
plain steps and of rounds that kept n, since a step the OS set aside only ever takes
longer, so the quiet samples are what the work costs. The count n is this request's.
`GainRule` keeps a moving average of the scores and pauses speculation (plain steps)
while it is under 1, for longer after each probe that still does not pay.

A sampled request's draws depend on where speculation ran, so its rule must not read
the clock: it prices a round at a fixed `1 + _PRIOR_DRAFT_COST × k` plain steps (with
k = 3: it pauses while fewer than 30 % of the drafts stand), and a seeded request
repeats itself. Greedy rounds are priced so too until a few samples of each kind exist.

Runs on the generation thread only (engine/solo.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

__all__ = ["GainRule", "RoundCosts"]

# Quiet samples of each kind kept (per model): enough that a few quiet ones survive load.
_WINDOW = 16
_MIN_SAMPLES = 3  # fewer: the prior price
# A round priced without the clock (sampled requests, too few samples yet): one plain
# step plus this much per draft token.
_PRIOR_DRAFT_COST = 0.3
# Weight of the newest round's score in the moving average.
_WEIGHT = 0.5
# Plain steps after a round that did not pay; doubled after each probe that still does
# not (up to _MAX_PAUSE), back to _PAUSE once one pays.
_PAUSE = 4
_MAX_PAUSE = 32
# Plain steps after a drafter proposed nothing, doubled while it keeps proposing nothing:
# each attempt reads the pending token at once, which costs the pipeline its overlap.
_PAUSE_NO_DRAFT = 2
_MAX_PAUSE_NO_DRAFT = 4


class RoundCosts:
    """What a plain step and a round that kept n of k drafts cost this model (wall
    seconds, step start to next step start: the host's work on the tokens included)."""

    def __init__(self) -> None:
        self.plain: deque[float] = deque(maxlen=_WINDOW)
        self.rounds: dict[tuple[int, int], deque[float]] = {}  # by (kept, drafted)

    def add_plain(self, seconds: float) -> None:
        self.plain.append(seconds)

    def add_round(self, kept: int, drafted: int, seconds: float) -> None:
        self.rounds.setdefault((kept, drafted), deque(maxlen=_WINDOW)).append(seconds)

    def gain(self, kept: int, drafted: int) -> float | None:
        """(kept + 1) plain steps' cost over one such round's; None before a few of each
        were seen (one sample may be one the OS set aside). Prompt lookup's drafts vary in
        length, so a (kept, drafted) pair not seen often enough is priced from the rounds
        of that length that kept any count (what they send costs little beside the pass)."""
        plain, round_ = _quiet(self.plain), _quiet(self.rounds.get((kept, drafted), ()))
        if round_ is None:  # few of these yet: rounds of that length that kept any count
            same = [s for (_, k), seen in self.rounds.items() if k == drafted for s in seen]
            round_ = _quiet(same)
        if plain is None or round_ is None:
            return None
        return (kept + 1) * plain / round_


class GainRule:
    """One request's speculation rule: speculate now, or how many plain steps first."""

    def __init__(self, costs: RoundCosts, k: int, *, timed: bool) -> None:
        self.costs = costs
        self.k = k
        self.timed = timed  # False for sampled requests: nothing here may read the clock
        self.average: float | None = None  # moving average of the rounds' scores
        self.pause = 2  # plain steps left before drafting (first: plain steps to measure)
        self.backoff = _PAUSE
        self.no_draft = _PAUSE_NO_DRAFT

    @property
    def ready(self) -> bool:
        return self.pause == 0

    def plain_step(self) -> None:
        self.pause = max(0, self.pause - 1)

    def nothing_proposed(self) -> None:
        self.pause = self.no_draft
        self.no_draft = min(2 * self.no_draft, _MAX_PAUSE_NO_DRAFT)

    def round_done(self, kept: int, drafted: int) -> None:
        """Score a round that kept `kept` of `drafted` tokens (its cost already added)."""
        self.no_draft = _PAUSE_NO_DRAFT
        score = self.costs.gain(kept, drafted) if self.timed else None
        if score is None:
            score = (kept + 1) / (1 + _PRIOR_DRAFT_COST * drafted)
        probing = self.average is None
        if self.average is not None:
            score = self.average + _WEIGHT * (score - self.average)
        self.average = score
        if score >= 1:
            if probing:
                self.backoff = _PAUSE
            return
        # Not paying: plain steps, then one fresh round decides again.
        self.pause, self.average = self.backoff, None
        self.backoff = min(2 * self.backoff, _MAX_PAUSE)


def _quiet(samples: Collection[float]) -> float | None:
    """The lower quartile: the cost of the work when the machine left it alone."""
    if len(samples) < _MIN_SAMPLES:
        return None
    return sorted(samples)[len(samples) // 4]
