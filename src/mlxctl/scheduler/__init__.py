"""The scheduler: which models are loaded, who waits, who gets evicted.

loop.py      `Scheduler`: one asyncio task owns the state, fed by events
policy.py    pure decisions: `evict_for`, `estimate_bytes`
state.py     loaded entries (ref count, keep-alive deadline, state) and snapshots
events.py    the events the loop handles     lease.py   the ref count a request holds
errors.py    Busy / CannotFit / LoadFailed / WorkerLost (WorkerTimeout) / ShuttingDown
config.py    limits from the settings; budget.py and keepalive.py parse them
"""

from mlxctl.scheduler.config import SchedulerConfig
from mlxctl.scheduler.errors import (
    Busy,
    CannotFit,
    LoadFailed,
    SchedulerError,
    ShuttingDown,
    WorkerLost,
    WorkerTimeout,
)
from mlxctl.scheduler.lease import Lease
from mlxctl.scheduler.loop import DEFAULT, KeepAlive, Scheduler
from mlxctl.scheduler.state import ModelStatus, SchedulerStatus

__all__ = [
    "DEFAULT",
    "Busy",
    "CannotFit",
    "KeepAlive",
    "Lease",
    "LoadFailed",
    "ModelStatus",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerError",
    "SchedulerStatus",
    "ShuttingDown",
    "WorkerLost",
    "WorkerTimeout",
]
