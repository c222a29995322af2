"""What the engine thread owes each generation request: its `Job`, and the `Outbox`.

The host (engine/host.py) creates a Job per request and keeps the Outbox; a backend
fills the Job's figures as it decodes, `send`s each token and `finish`es the job,
and the host delivers the events at the end of the step.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from mlxctl.engine.stats import EngineStats
from mlxctl.engine.types import DoneEvent, FinishReason, GenerationRequest, TokenEvent

__all__ = ["Event", "Job", "Outbox"]

Event = TokenEvent | DoneEvent


@dataclass(eq=False)
class Job:
    """One generation request's life.

    The caller sets `cancelled` when it stops reading; every field below it belongs
    to the engine thread (the backend fills `uid`, `detokenizer`, `cached`,
    `generated` and `first_token`; the DoneEvent reports them).
    """

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event]
    max_tokens: int
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    finished: bool = False
    uid: int | None = None  # the backend's id for the job's sequence
    detokenizer: Any = None  # the backend's text decoder for the job's tokens
    cached: int = 0  # prompt tokens whose KV came from a cache
    generated: int = 0
    first_token: float | None = None
    failure: str | None = None  # set mid-step (a logits processor raised): ends it in error


class Outbox:
    """The engine thread's ledger: which jobs run, and their events until the next flush.

    Backends call `send` for each token and `finish` when a job ends; the host delivers
    what piled up at the end of the step. Counters move before events, so a consumer
    reading stats after its DoneEvent sees them.
    """

    def __init__(self, stats: EngineStats) -> None:
        self.stats = stats
        self.running: dict[Job, None] = {}  # in admission order
        self.finished = False  # a job ended since the last flush
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}

    def send(self, job: Job, event: Event) -> None:
        pending = self._pending.get(job.loop)
        if pending is None:
            pending = self._pending[job.loop] = []
        pending.append((job, event))

    def finish(
        self,
        job: Job,
        reason: FinishReason,
        *,
        error: str | None = None,
        now: float | None = None,
    ) -> None:
        """End `job` with its DoneEvent (the backend has dropped its sequence)."""
        if job.finished:
            return
        now = time.perf_counter() if now is None else now
        if reason == "error":
            self.stats.add_error()
        first = job.first_token
        done = DoneEvent(
            finish_reason=reason,
            prompt_tokens=len(job.request.prompt_tokens),
            completion_tokens=job.generated,
            cached_tokens=job.cached,
            error=error,
            time_to_first_token=None if first is None else first - job.submitted,
            generation_seconds=None if first is None else now - first,
        )
        self.retire(job, now=now)
        self.send(job, done)

    def retire(self, job: Job, *, cancelled: bool = False, now: float | None = None) -> None:
        """Forget a job that left the engine (finished, failed or cancelled)."""
        if job.finished:
            return
        job.finished = True
        self.finished = True
        self.running.pop(job, None)
        now = time.perf_counter() if now is None else now
        seconds = None if cancelled else now - job.submitted
        self.stats.release(seconds=seconds, cancelled=cancelled)
        self.stats.set_active(len(self.running))

    def take(self) -> list[tuple[asyncio.AbstractEventLoop, list[tuple[Job, Event]]]]:
        """The events held since the last call, per event loop."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, {}
        return list(pending.items())
