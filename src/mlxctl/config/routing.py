"""Routing aliases: which model of an alias's list answers a request, decided purely.

`auto: [big, small]` goes to the first model of the list that is loaded (or loading)
and not saturated, else the first that fits the memory budget now, else the first.
The scheduler tells where each model stands (`Scheduler.placement`); this decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlxctl.registry import ModelRecord


@dataclass(frozen=True)
class Placement:
    """Where one model stands: loaded (or loading), at its batch limit, and whether a load
    of it would fit the budget now (evicting idle models)."""

    loaded: bool
    saturated: bool
    fits: bool


def choose(candidates: Sequence[tuple[ModelRecord, Placement]]) -> ModelRecord:
    """The model an alias's request goes to; `candidates` in the alias's order, not empty."""
    for record, place in candidates:
        if place.loaded and not place.saturated:
            return record
    for record, place in candidates:
        if place.fits and not place.loaded:  # a saturated one would only queue
            return record
    return candidates[0][0]
