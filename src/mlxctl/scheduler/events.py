"""The events the scheduler loop handles, one dataclass each.

Requests, releases and admin calls come from HTTP handlers; the rest come back
from the effect tasks (loads, stops, exit watchers) and from timers. Events about
a worker carry its `worker_id`, so news about a replaced worker is ignored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mlxctl.registry import ModelRecord
from mlxctl.scheduler.config import SchedulerConfig
from mlxctl.scheduler.state import SchedulerStatus, SlotPin, Waiter
from mlxctl.supervision.base import Worker


@dataclass(frozen=True)
class Acquire:
    record: ModelRecord
    waiter: Waiter
    slot: SlotPin | None = None  # load it onto this slot (pinned) if it must be loaded


@dataclass(frozen=True)
class Adopt:
    """A ready slot worker a previous daemon started: counted from now on."""

    record: ModelRecord
    waiter: Waiter
    slot: SlotPin
    worker: Worker


@dataclass(frozen=True)
class Release:
    slug: str
    worker_id: int
    keep_alive: float | None


@dataclass(frozen=True)
class LoadDone:
    slug: str
    worker_id: int


@dataclass(frozen=True)
class LoadFailed:
    slug: str
    worker_id: int
    message: str


@dataclass(frozen=True)
class WorkerExited:
    slug: str
    worker_id: int
    returncode: int | None


@dataclass(frozen=True)
class Expire:
    slug: str
    worker_id: int
    token: int


@dataclass(frozen=True)
class WaitExpired:
    slug: str
    waiter: Waiter


@dataclass(frozen=True)
class Unload:
    slug: str
    future: asyncio.Future[bool]
    slot: bool = False  # a pinned model too (the slot supervisor's unload)


@dataclass(frozen=True)
class Restart:
    """Drain `slug`'s on-demand worker (its requests finish; new ones wait) and let the
    next request start a new one, with the options in force by then."""

    slug: str
    future: asyncio.Future[bool]


@dataclass(frozen=True)
class Reconfigure:
    """New limits from a config reload (budget, max loaded, keep-alive, queue)."""

    config: SchedulerConfig


@dataclass(frozen=True)
class Query:
    future: asyncio.Future[SchedulerStatus]


@dataclass(frozen=True)
class Shutdown:
    future: asyncio.Future[None]


Event = (
    Acquire
    | Adopt
    | Release
    | LoadDone
    | LoadFailed
    | WorkerExited
    | Expire
    | WaitExpired
    | Restart
    | Reconfigure
    | Unload
    | Query
    | Shutdown
)
