"""What the scheduler needs from a worker, whatever runs it.

`process.WorkerProcess` is the real one (a supervised process per model);
the scheduler's unit tests use a recording fake with the same shape. A worker
is created unstarted by a `WorkerFactory`, then driven by the scheduler's
effect tasks: `start` → `wait_ready` → ... → `stop`, while another task waits
on `wait_exit` so a crash is noticed the moment the process ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from mlxctl.registry import ModelRecord

ProcessState = Literal["new", "loading", "ready", "unloading", "exited", "failed"]


class LoadError(Exception):
    """The worker did not become ready: the message says why and where the log is."""


@dataclass(frozen=True)
class MemoryReading:
    """Measured memory of one worker: the OS's view (RSS) and MLX's own counters."""

    rss: int | None = None
    mlx_active: int | None = None
    mlx_peak: int | None = None
    mlx_cache: int | None = None

    @property
    def total(self) -> int | None:
        """Best single figure: MLX memory can live outside RSS (Metal buffers on macOS)."""
        if self.rss is None and self.mlx_active is None:
            return None
        return max(self.rss or 0, (self.mlx_active or 0) + (self.mlx_cache or 0))


class Worker(Protocol):
    slug: str

    @property
    def state(self) -> ProcessState: ...

    @property
    def base_url(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def log_path(self) -> Path | None: ...

    @property
    def external(self) -> bool:
        """An OpenAI server of another kind (a command's, a sharded model's): it is sent
        the model's own name, and may end a stream by just closing it when it dies."""

    @property
    def headers(self) -> dict[str, str]:
        """Headers every call to the worker carries (its key, when the daemon has one)."""

    async def start(self) -> None:
        """Spawn the process; raises LoadError when it cannot even start."""

    async def wait_ready(self, timeout: float) -> None:
        """Return once the model has loaded; raises LoadError (exit, failure, timeout)."""

    async def wait_exit(self) -> int | None:
        """Return the exit code once the process is gone (None: it never started)."""

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once it has exited."""

    def detach(self) -> None:
        """Stop watching it without stopping it (a slot worker when the daemon closes)."""

    def exit_message(self) -> str:
        """Why it ended, for users: exit code or signal plus the log's last error line."""


WorkerFactory = Callable[[ModelRecord], Worker]
