"""Who to evict so a model fits: pure decisions, no I/O, no logging, no clock.

`evict_for` answers one question for the scheduler loop: given what is loaded,
which idle models must go so that `target_estimate` more bytes (and one more
model) fit? The loop acts on the answer; tests call it with plain values.
A pinned model (a slot's) holds its memory for as long as it is pinned: it is
never chosen, and it does not count against `max_loaded` (the slot table bounds it).

    estimate_bytes(record, options)           weights + KV for the model's batch
    evict_for(target, loaded, budget, max)    [] fits now, [names] evict these, None not now
    cannot_fit(...)                           no eviction or wait will ever make room
    waits_for_exits(...)                      it fits, but only once the unloading ones exit
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mlxctl.backend import backend_of
from mlxctl.model_options import ModelOptions
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
    forever: bool = False
    pinned: bool = False  # on a slot: never evicted, not counted against max_loaded
    kept: bool = False  # `pinned: true` in config.yaml: never evicted, counted as usual

    @property
    def idle(self) -> bool:
        return self.state == "ready" and self.in_flight == 0


def estimate_bytes(record: ModelRecord, options: ModelOptions) -> int:
    """Weights plus a KV cache of `options.kv_context` tokens per sequence, for
    `options.max_batch` sequences, capped at the context the worker serves; at
    `options.kv_bits` when the worker quantizes its KV; plus a speculative draft model's
    `options.draft_bytes`.

    llama.cpp allocates one KV cache for its whole context up front and shares it
    between sequences: that context, not `kv_context` per sequence, is counted.
    """
    weights = record.size_bytes or 0
    per_token = record.kv_bytes_per_token or 0
    if backend_of(record).shared_kv:
        own = min(record.context_length or GGUF_MAX_CONTEXT, GGUF_MAX_CONTEXT)
        return weights + per_token * (options.context or own)
    per_token = options.kv_bytes(per_token, record.dtype_bytes)  # quantized KV, if set
    served = options.context or record.context_length
    ctx = min(options.kv_context, served) if served else options.kv_context
    return weights + per_token * max(0, ctx) * max(1, options.max_batch) + options.draft_bytes


def evict_for(
    target_estimate: int,
    loaded: Sequence[LoadedView],
    budget: int,
    max_loaded: int,
    *,
    pinned: bool = False,
) -> list[str] | None:
    """Names of idle models to evict (least recently used first) so the target fits.

    `[]` means it fits now. None means it cannot fit even after evicting every idle
    model: it is larger than the budget, or pinned, busy and loading models hold the
    rest. Models already unloading count as gone; the caller waits for their exit.
    A model with requests in flight, or pinned, is never chosen. A `pinned` target
    (a slot load) does not count against `max_loaded`.
    """
    if cannot_fit(target_estimate, loaded, budget, max_loaded, pinned=pinned):
        return None
    staying = [view for view in loaded if view.state != "unloading"]
    used = sum(view.estimate for view in staying)
    count = sum(1 for view in staying if not view.pinned)

    def fits() -> bool:
        return used + target_estimate <= budget and (pinned or count + 1 <= max_loaded)

    victims: list[str] = []
    candidates = sorted(
        (view for view in staying if view.idle and not view.pinned and not view.kept),
        key=lambda v: (v.forever, v.last_used, v.name),
    )
    for view in candidates:
        if fits():
            break
        victims.append(view.name)
        used -= view.estimate
        count -= 1
    return victims if fits() else None


def cannot_fit(
    target_estimate: int,
    loaded: Sequence[LoadedView],
    budget: int,
    max_loaded: int,
    *,
    pinned: bool = False,
) -> bool:
    """True when waiting cannot help: the target is larger than the budget less what
    pinned and kept models hold (they never leave by themselves), or no model may load."""
    held = pinned_bytes(loaded) + sum(
        v.estimate for v in loaded if v.kept and not v.pinned and v.state != "unloading"
    )
    return target_estimate > budget - held or (not pinned and max_loaded < 1)


def pinned_bytes(loaded: Sequence[LoadedView]) -> int:
    """What pinned models hold: memory no eviction frees."""
    return sum(v.estimate for v in loaded if v.pinned and v.state != "unloading")


def waits_for_exits(
    target_estimate: int,
    loaded: Sequence[LoadedView],
    budget: int,
    max_loaded: int,
    *,
    pinned: bool = False,
) -> bool:
    """True while models still unloading hold memory (or a place) the target needs."""
    used = sum(view.estimate for view in loaded)
    count = sum(1 for view in loaded if not view.pinned)
    return used + target_estimate > budget or (not pinned and count + 1 > max_loaded)
