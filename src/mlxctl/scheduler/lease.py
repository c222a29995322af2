"""A lease on a ready worker: the ref count the scheduler keeps for each request."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from mlxctl.supervision.base import Worker


class Lease:
    """Held from the grant until the response's last byte; `release()` is idempotent.

    While any lease on a worker is held, the scheduler neither evicts nor expires it.
    """

    def __init__(
        self,
        slug: str,
        worker_id: int,
        worker: Worker,
        keep_alive: float | None,
        on_release: Callable[[Lease], None],
    ) -> None:
        self.slug = slug
        self.worker_id = worker_id
        self.worker = worker
        self.keep_alive = keep_alive
        self._on_release = on_release
        self.released = False

    @property
    def base_url(self) -> str:
        return self.worker.base_url

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._on_release(self)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
