"""The peers as the daemon's request handlers see them: where a request goes, and the
forwarding of one that goes to a peer.

`Peers.place` is called at the one door every dialect passes (`Incoming.resolve`): it
returns the local model, or raises `Elsewhere` with the peers to try in order. The
dialect's handler answers `Elsewhere` with `Peers.forward`.

    model@host          host is this daemon: local; a peer: that peer; else 404
    a local model       here, unless it cannot fit now and a peer can serve it now
    not local           a peer that has it loaded, else one with room, else any that
                        has it; no peer: the model map, else 404
    forwarded request   (X-Mlxctl-Forwarded-By) never forwarded again: here or 404
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from mlxctl.config.live import LiveConfig
from mlxctl.config.schema import PeerSection
from mlxctl.errors import NotFound, Unavailable
from mlxctl.peers.affinity import Affinity, prefix_key
from mlxctl.peers.choice import Target, candidates
from mlxctl.peers.forward import open_upstream, passed_back
from mlxctl.peers.monitor import FORWARDED_BY, PeerMonitor
from mlxctl.peers.view import PeerView
from mlxctl.registry import ModelRecord
from mlxctl.router import Dialect, Exchange, Router


class Elsewhere(Exception):  # a routing outcome, not a failure
    """The request goes to a peer: `targets` in the order to try them."""

    def __init__(self, peers: Peers, targets: list[Target], key: str | None) -> None:
        super().__init__(f"to {targets[0].peer.name}")
        self.peers, self.targets, self.key = peers, targets, key


@dataclass
class Peers:
    """This daemon's view of its peers (`monitor`) and where conversations stuck."""

    me: str
    monitor: PeerMonitor
    http: httpx.AsyncClient
    affinity: Affinity

    @classmethod
    def start(
        cls,
        me: str,
        peers: Callable[[], Mapping[str, PeerSection]],
        interval: float,
        http: httpx.AsyncClient | None = None,
    ) -> Peers:
        """Peers read from `peers()` (config.yaml's section, re-read each round)."""
        client = http or peer_client()
        found = cls(me, PeerMonitor(peers, client, me, interval), client, Affinity())
        found.monitor.start()
        return found

    async def aclose(self) -> None:
        await self.monitor.aclose()
        await self.http.aclose()

    def up(self) -> list[PeerView]:
        return [v for v in self.monitor.views() if v.up]

    # Where a request goes ---------------------------------------------------------------

    def place(
        self, name: str, body: dict[str, Any], router: Router, headers: Mapping[str, str]
    ) -> ModelRecord:
        """The local model for `name`, or `Elsewhere` (raised) naming the peers to try."""
        model, at, host = name.rpartition("@")
        if at and host == self.me:
            return router.resolve(model)
        if not self.monitor.views():  # no peers: the single-host path, nothing added
            return router.resolve(name)
        forwarded = FORWARDED_BY in headers
        view = self.monitor.view(host) if at else None
        if view is not None:
            return self._named_host(model, view, body, forwarded)
        if forwarded:
            return router.resolve(name)
        try:
            record: ModelRecord | None = router.resolve(name, mapped=True)
        except NotFound:
            record = None
        if record is not None:
            placement = router.scheduler.placement(record)
            if not placement.loaded and not placement.fits:
                self._away(name, body, ready_only=True)  # raises when a peer can take it
            return record
        self._away(name, body, ready_only=False)
        return router.resolve(name)  # the model map's, or NotFound

    def _named_host(
        self, model: str, view: PeerView, body: dict[str, Any], forwarded: bool
    ) -> ModelRecord:
        if forwarded:
            raise NotFound(
                f"model '{model}@{view.name}' is not on this host ({self.me}), and a "
                "forwarded request is never forwarded again",
                hint="ask the host that has it directly",
            )
        if not view.up:
            raise Unavailable(f"peer '{view.name}' ({view.url}) is down: {view.error}")
        slug = view.slug_of(model) or model  # unknown there: the peer answers its 404
        raise Elsewhere(self, [Target(view, slug)], prefix_key(model, body))

    def _away(self, name: str, body: dict[str, Any], *, ready_only: bool) -> None:
        key = prefix_key(name, body)
        found = candidates(
            name,
            self.up(),
            sticky=self.affinity.host(key),
            turn=next(_TURNS),
            ready_only=ready_only,
        )
        if found:
            raise Elsewhere(self, found, key)

    # Forwarding --------------------------------------------------------------------------

    async def forward(
        self,
        away: Elsewhere,
        request: Request,
        body: dict[str, Any],
        dialect: Dialect,
        exchange: Exchange,
        router: Router,
    ) -> Response:
        """Try `away.targets` in order; a peer that cannot be reached is marked down and
        the next one tried. Raises Unavailable when none could be reached."""
        failed: list[str] = []
        for target in away.targets:
            name = target.peer.name
            exchange.model = f"{target.slug}@{name}"
            try:
                upstream = await open_upstream(
                    self.http, target, request, body, self.me, router.timeouts, exchange.request_id
                )
            except httpx.TransportError as e:
                self.monitor.mark_down(name, f"{type(e).__name__}: {e}")
                failed.append(name)
                continue
            if upstream.status_code < 400:
                self.affinity.remember(away.key, name)
            return passed_back(upstream, target, dialect, exchange)
        raise Unavailable(
            f"no peer could be reached for '{away.targets[0].slug}' (tried {', '.join(failed)})",
            hint="the peers are marked down; they are taken back once they answer again",
        )


_TURNS = itertools.count()


def peer_client() -> httpx.AsyncClient:
    """The client for peers: no proxies from the environment, no read timeout of its own
    (the forwarder bounds the first byte and the gaps between chunks)."""
    return httpx.AsyncClient(
        trust_env=False,
        timeout=httpx.Timeout(connect=2.0, read=None, write=60.0, pool=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
    )


def peer_sections(live: LiveConfig) -> Callable[[], Mapping[str, PeerSection]]:
    """config.yaml's `peers:` as in force now (none without a file)."""
    return lambda: live.config.peers if live.config is not None else {}
