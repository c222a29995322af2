"""Who to evict so a model fits: pure decisions, no I/O, no logging, no clock.

`evict_for` answers one question for the scheduler loop: given what is loaded,
which idle models must go so that `target_estimate` more bytes (and one more
model) fit? The loop acts on the answer; tests call it with plain values.

    estimate_bytes(record, ctx, max_batch)    weights + KV for max_batch sequences
    evict_for(target, loaded, budget, max)    [] fits now, [names] evict these, None cannot
    waits_for_exits(...)                      it fits, but only once the unloading ones exit
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mlxctl.registry import ModelRecord
from mlxctl.store.local.ggufinfo import GGUF_MAX_CONTEXT

State = Literal["loading", "ready", "unloading"]


@dataclass(frozen=True)
class LoadedView:
    """What the policy may know about one loaded (or loading, or leaving) model."""

    name: str
    estimate: int
    in_flight: int = 0
    last_used: float = 0.0
    state: State = "ready"
    # keep_alive -1: never expires, so it goes only after every other idle model.
    pinned: bool = False

    @property
    def idle(self) -> bool:
        return self.state == "ready" and self.in_flight == 0


def estimate_bytes(record: ModelRecord, ctx: int, max_batch: int) -> int:
    """Weights plus a KV cache of `ctx` tokens (capped at the model's context) per sequence.

    A GGUF is served by llama.cpp, which allocates one KV cache for its whole context up
    front and shares it between sequences: that context, not `ctx` per sequence, is counted.
    """
    weights = record.size_bytes or 0
    per_token = record.kv_bytes_per_token or 0
    if record.format == "gguf":
        return weights + per_token * min(
            record.context_length or GGUF_MAX_CONTEXT, GGUF_MAX_CONTEXT
        )
    if record.context_length:
        ctx = min(ctx, record.context_length)
    return weights + per_token * max(0, ctx) * max(1, max_batch)


def evict_for(
    target_estimate: int,
    loaded: Sequence[LoadedView],
    budget: int,
    max_loaded: int,
) -> list[str] | None:
    """Names of idle models to evict (least recently used first) so the target fits.

    `[]` means it fits now. None means it cannot fit even after evicting every idle
    model: either it is larger than the budget, or busy and loading models hold the
    rest. Models already unloading count as gone; the caller waits for their exit.
    A model with requests in flight is never chosen.
    """
    if target_estimate > budget or max_loaded < 1:
        return None
    staying = [view for view in loaded if view.state != "unloading"]
    used = sum(view.estimate for view in staying)
    count = len(staying)

    def fits() -> bool:
        return used + target_estimate <= budget and count + 1 <= max_loaded

    victims: list[str] = []
    candidates = sorted(
        (view for view in staying if view.idle), key=lambda v: (v.pinned, v.last_used, v.name)
    )
    for view in candidates:
        if fits():
            break
        victims.append(view.name)
        used -= view.estimate
        count -= 1
    return victims if fits() else None


def waits_for_exits(
    target_estimate: int, loaded: Sequence[LoadedView], budget: int, max_loaded: int
) -> bool:
    """True while models still unloading hold memory (or a place) the target needs."""
    used = sum(view.estimate for view in loaded)
    return used + target_estimate > budget or len(loaded) + 1 > max_loaded
