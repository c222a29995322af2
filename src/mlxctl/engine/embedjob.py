"""One embedding request on its way to an engine thread and its answer on the way back.

Both engines (generation and encoder) take `EmbedJob`s on their command queue and
`settle` them from their thread; the caller awaits `job.future` on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

__all__ = ["EmbedJob", "check_tokens", "settle"]


@dataclass(eq=False)
class EmbedJob:
    token_lists: list[list[int]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[list[float]]]
    submitted: float = field(default_factory=time.perf_counter)

    @classmethod
    def new(cls, token_lists: list[list[int]]) -> EmbedJob:
        """A job for the running event loop (call from async code)."""
        loop = asyncio.get_running_loop()
        return cls(token_lists, loop, loop.create_future())


def check_tokens(token_lists: list[list[int]], *, context_length: int, vocab_size: int) -> None:
    """Raise ValueError unless every input has 1..context_length ids in [0, vocab_size)."""
    if not token_lists:
        raise ValueError("There are no inputs.")
    for tokens in token_lists:
        if not tokens:
            raise ValueError("An input has no tokens.")
        if len(tokens) > context_length:
            raise ValueError(f"An input is {len(tokens)} tokens; the model takes {context_length}.")
        if min(tokens) < 0 or max(tokens) >= vocab_size:
            raise ValueError(f"Token ids must be in [0, {vocab_size}).")


def settle(job: EmbedJob, outcome: list[list[float]] | BaseException) -> None:
    """Hand the vectors (or the error) to the caller's loop; called on the engine thread."""

    def apply() -> None:
        if job.future.done():  # the caller left
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    # A closed loop means the caller is gone: nobody is waiting.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(apply)
