"""A recording fake worker factory: the scheduler's decisions without processes."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from mlxctl.registry import ModelRecord
from mlxctl.supervision.base import LoadError, ProcessState

MB = 1_000_000


def record(slug: str, size_mb: int = 10, kv: int = 0, ctx: int | None = None) -> ModelRecord:
    return ModelRecord(
        slug=slug,
        cache_path=f"/models/{slug}",
        size_bytes=size_mb * MB,
        kv_bytes_per_token=kv,
        context_length=ctx,
    )


class FakeWorker:
    def __init__(self, factory: RecordingFactory, rec: ModelRecord, pid: int) -> None:
        self.factory = factory
        self.slug = rec.slug
        self._pid = pid
        self._state: ProcessState = "new"
        self._ready = asyncio.Event()
        self._exited = asyncio.Event()
        self._returncode: int | None = None
        self.failure: str | None = factory.failures.get(rec.slug)
        if factory.auto_ready and self.failure is None:
            self._ready.set()

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def base_url(self) -> str:
        return f"http://fake/{self.slug}/{self._pid}"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def log_path(self) -> Path | None:
        return None

    @property
    def external(self) -> bool:
        return False

    @property
    def headers(self) -> dict[str, str]:
        return {}

    async def start(self) -> None:
        self.factory.log.append(f"start {self.slug}")
        self._state = "loading"

    async def wait_ready(self, timeout: float) -> None:
        if self.failure is not None:
            self._state = "failed"
            raise LoadError(self.failure)
        await asyncio.wait_for(self._ready.wait(), timeout)
        self._state = "ready"

    async def wait_exit(self) -> int | None:
        await self._exited.wait()
        return self._returncode

    async def stop(self, grace: float) -> None:
        if not self._exited.is_set():
            self.factory.log.append(f"stop {self.slug}")
            self.exit(0)

    def exit_message(self) -> str:
        return f"the worker exited with code {self._returncode}"

    def detach(self) -> None:
        self.factory.log.append(f"detach {self.slug}")

    # Test controls
    def ready(self) -> None:
        self._ready.set()

    def exit(self, code: int) -> None:
        self._returncode = code
        self._state = "exited"
        self._exited.set()


class RecordingFactory:
    """Creates FakeWorkers and records `start X` / `stop X` in order."""

    def __init__(self, *, auto_ready: bool = True) -> None:
        self.auto_ready = auto_ready
        self.log: list[str] = []
        self.workers: list[FakeWorker] = []
        self.failures: dict[str, str] = {}
        self._pids = itertools.count(1000)

    def __call__(self, rec: ModelRecord) -> FakeWorker:
        worker = FakeWorker(self, rec, next(self._pids))
        self.workers.append(worker)
        return worker

    def latest(self, slug: str) -> FakeWorker:
        return [w for w in self.workers if w.slug == slug][-1]
