"""The fast path's order of work: when each token is read and which passes are queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest

from mlxctl.engine import mlxlm, solo
from mlxctl.engine.solo import Solo, SoloResponse
from tests.engine.streams import greedy_solo


class Recording:
    """The model, noting each forward pass (its input length) in `log`."""

    def __init__(self, model: Any, log: list[str]) -> None:
        self.model, self.log = model, log

    def __getattr__(self, name: str) -> Any:  # layers, make_cache: the model's own
        return getattr(self.model, name)

    def __call__(self, inputs: mx.array, cache: Any = None) -> Any:
        self.log.append(f"pass {inputs.shape[1]}")
        return self.model(inputs, cache=cache)


def lone(tiny_model: Path, log: list[str], max_tokens: int) -> Solo:
    model, _ = mlxlm.load(tiny_model)
    return greedy_solo(Recording(model, log), [5, 6, 7, 8, 9, 10], max_tokens)


def test_the_first_token_is_read_before_the_next_pass_and_none_follows_the_last(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    real_int = solo._int

    def reading(array: mx.array) -> int:
        log.append("read")
        return real_int(array)

    monkeypatch.setattr(solo, "_int", reading)
    sequence = lone(tiny_model, log, max_tokens=3)
    out: list[SoloResponse] = []
    while not out or out[-1].finish_reason is None:
        out += sequence.step()[1]
        log.append("|")
    assert [r.finish_reason for r in out] == [None, None, "length"]
    # Prefill; the first token's pass, read and sent in the same step with no pass queued
    # behind it; then each step queues the next pass before reading; the last queues none.
    steps = [["pass 5"], ["pass 1", "read"], ["pass 1", "pass 1", "read"], ["read"]]
    assert log == [entry for step in steps for entry in [*step, "|"]]
    # The cache holds what was fed: the prompt and every reply token but the last.
    assert sequence.fed == [5, 6, 7, 8, 9, 10, *(r.token for r in out[:-1])]
    assert out[-1].all_tokens == sequence.fed
