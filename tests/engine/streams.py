"""Helpers for reading engine streams in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlxctl.engine.host import EngineHost
from mlxctl.engine.sampling import make_sampler
from mlxctl.engine.solo import Solo
from mlxctl.engine.speculative import Drafter
from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, GenerationRequest, SamplingParams, TokenEvent

T = TypeVar("T")


@dataclass
class Result:
    tokens: list[int] = field(default_factory=list)
    events: list[TokenEvent] = field(default_factory=list)
    done: DoneEvent | None = None

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)


async def collect(engine: EngineHost[Any], request: GenerationRequest) -> Result:
    """Read a whole stream, checking its shape: TokenEvents, then exactly one DoneEvent."""
    result = Result()
    async for event in engine.generate(request):
        assert result.done is None, "nothing may follow the DoneEvent"
        if isinstance(event, DoneEvent):
            result.done = event
        else:
            result.events.append(event)
            result.tokens.append(event.token)
    assert result.done is not None
    return result


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def greedy(prompt: list[int], max_tokens: int, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(prompt, max_tokens, SamplingParams(temperature=0.0, **sampling))


def greedy_solo(
    model: Any,
    prompt: list[int],
    max_tokens: int,
    *,
    drafter: Drafter | None = None,
    num_draft_tokens: int = 0,
) -> Solo:
    """A lone greedy sequence on the fast path, stepped by hand (no engine thread)."""
    return Solo(
        model,
        uid=-1,
        prompt=prompt,
        cache=None,
        cached=0,
        max_tokens=max_tokens,
        sampler=make_sampler(SamplingParams(temperature=0.0), 0),
        processors=[],
        stop=[],
        prefill_step_size=64,
        drafter=drafter,
        num_draft_tokens=num_draft_tokens,
        stats=EngineStats(max_batch=1, max_queue=1),
    )
