"""The peer monitor: one task on the daemon's event loop reads every peer's status.

Every `peer_poll_interval` seconds it reads each peer named in config.yaml's `peers:`
(read afresh each round, so a config reload adds, changes and drops peers) at
`GET /api/admin/status` (loaded models, free budget) and `GET /api/admin/models` (what
it has registered), with the peer's key. A refused connection, or two failed reads in
a row, marks the peer down; one good read takes it back. Its reads carry the
forwarded-by header, so a peer answers with its own models only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from mlxctl.config.schema import PeerSection
from mlxctl.peers.view import PeerView

log = logging.getLogger("mlxctl.peers")

FORWARDED_BY = "x-mlxctl-forwarded-by"
_MISSES_DOWN = 2


def peer_headers(key: str | None, me: str) -> dict[str, str]:
    """What every call to a peer carries: its key, and who calls (the loop guard)."""
    headers = {FORWARDED_BY: me}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


class PeerMonitor:
    """The peers as last read; `views()` is read by request handlers on the same loop."""

    def __init__(
        self,
        peers: Callable[[], Mapping[str, PeerSection]],
        http: httpx.AsyncClient,
        me: str,
        interval: float = 1.0,
    ) -> None:
        self.peers, self.http, self.me = peers, http, me
        self.interval = interval
        self._views: dict[str, PeerView] = {}
        self._task: asyncio.Task[None] | None = None
        self._sync()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mlxctl-peers")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def views(self) -> list[PeerView]:
        self._sync()
        return list(self._views.values())

    def view(self, name: str) -> PeerView | None:
        self._sync()
        return self._views.get(name)

    def mark_down(self, name: str, why: str) -> None:
        """A request found the peer gone: down now, not at the next read."""
        view = self._views.get(name)
        if view is not None and view.up:
            log.warning("peer %s is down: %s", name, why)
            view.up, view.error = False, why

    async def refresh(self) -> None:
        """Read every peer once, together."""
        await asyncio.gather(*(self._read(view) for view in self.views()))

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # one bad answer must not end the monitor
                log.exception("peers: a status round failed")
            await asyncio.sleep(self.interval)

    def _sync(self) -> None:
        """The views follow config.yaml's `peers:` (a reload may have changed it)."""
        sections = self.peers()
        for name in [n for n in self._views if n not in sections]:
            del self._views[name]
        for name, section in sections.items():
            view = self._views.get(name)
            if view is None or (view.url, view.key) != (section.url, section.key):
                self._views[name] = PeerView(name, section.url, section.key)

    async def _read(self, view: PeerView) -> None:
        headers = peer_headers(view.key, self.me)
        timeout = max(1.0, 1.5 * self.interval)
        try:
            status, models = await asyncio.gather(
                self._get(view, "/api/admin/status", headers, timeout),
                self._get(view, "/api/admin/models", headers, timeout),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            refused = isinstance(e, httpx.ConnectError)
            view.misses += 1
            why = _why(e)
            if view.up and (refused or view.misses >= _MISSES_DOWN):
                log.warning("peer %s (%s) is down: %s", view.name, view.url, why)
                view.up = False
            if not view.up:
                view.error = why
            return
        if not view.up:
            log.info("peer %s (%s) is up", view.name, view.url)
        view.up, view.error, view.misses, view.seen = True, None, 0, time.time()
        view.models = list(models["models"])
        view.loaded = list(status["models"])
        view.free_bytes = _int(status.get("free_bytes"))
        view.budget_bytes = _int(status.get("budget_bytes"))

    async def _get(
        self, view: PeerView, path: str, headers: dict[str, str], timeout: float
    ) -> dict[str, Any]:
        response = await self.http.get(view.url + path, headers=headers, timeout=timeout)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{path} answered {response.status_code}: {response.text[:200]}",
                request=response.request,
                response=response,
            )
        data = response.json()
        if not isinstance(data, dict):
            raise TypeError(f"{path} did not answer an object")
        return data


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
