"""`Peers.place`: the table of docs/scale-out.md, on a stand-in router (its registry
and the scheduler's placement are the seam) and peers as if just read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mlxctl.config.routing import Placement
from mlxctl.config.schema import PeerSection
from mlxctl.errors import NotFound, Unavailable
from mlxctl.peers import FORWARDED_BY, Elsewhere, Peers
from mlxctl.peers.affinity import Affinity
from mlxctl.peers.monitor import PeerMonitor
from mlxctl.registry import ModelRecord


class Scheduler:
    def __init__(self) -> None:
        self.fits = True

    def placement(self, record: ModelRecord) -> Placement:
        return Placement(loaded=False, saturated=False, fits=self.fits)


class Router:
    """What `place` asks of the router: resolve (the model map only when not `mapped`)."""

    def __init__(self, *slugs: str) -> None:
        self.records = {s: ModelRecord(slug=s, cache_path=f"/m/{s}") for s in slugs}
        self.scheduler = Scheduler()
        self.mapped = False

    def resolve(self, name: str, *, mapped: bool = False) -> ModelRecord:
        if name in self.records:
            return self.records[name]
        if not mapped and name == "claude-x":
            self.mapped = True
            return self.records["local"]
        raise NotFound(f"model '{name}' not found")


@pytest.fixture
def peers() -> Peers:
    sections = {"b": PeerSection(url="http://b:1"), "c": PeerSection(url="http://c:1")}
    monitor = PeerMonitor(lambda: sections, httpx.AsyncClient(), "a")
    for name in ("b", "c"):
        view = monitor.view(name)
        assert view is not None
        view.up, view.free_bytes = True, 100
        view.models = [{"slug": "local", "size_bytes": 10}, {"slug": f"only-{name}"}]
    return Peers("a", monitor, monitor.http, Affinity())


def place(peers: Peers, router: Router, name: str, **headers: str) -> Any:
    """The slug placed here, or (peer, slug) of each target when it goes elsewhere."""
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    try:
        return peers.place(name, body, router, headers).slug  # type: ignore[arg-type]
    except Elsewhere as away:
        return [(t.peer.name, t.slug) for t in away.targets]


def test_the_placement_table(peers: Peers) -> None:
    router = Router("local")
    assert place(peers, router, "local") == "local"
    assert place(peers, router, "local@a") == "local"
    assert place(peers, router, "local@c") == [("c", "local")]
    assert place(peers, router, "only-b") == [("b", "only-b")]
    assert place(peers, router, "claude-x") == "local" and router.mapped  # map after peers
    with pytest.raises(NotFound):
        place(peers, router, "nowhere")
    router.scheduler.fits = False  # here, but it cannot fit now: a peer with room takes it
    assert sorted(place(peers, router, "local")) == [("b", "local"), ("c", "local")]


def test_a_forwarded_request_stays_here(peers: Peers) -> None:
    router = Router("local")
    marked = {FORWARDED_BY: "b"}
    with pytest.raises(NotFound, match="never forwarded again"):
        place(peers, router, "only-c@c", **marked)
    with pytest.raises(NotFound):
        place(peers, router, "only-c", **marked)
    router.scheduler.fits = False
    assert place(peers, router, "local", **marked) == "local"


def test_a_down_peer_is_skipped_or_named(peers: Peers) -> None:
    router = Router()
    view = peers.monitor.view("b")
    assert view is not None
    view.up, view.error = False, "ConnectError: refused"
    assert place(peers, router, "local") == [("c", "local")]
    with pytest.raises(NotFound):
        place(peers, router, "only-b")
    with pytest.raises(Unavailable, match=r"peer 'b'.*down: ConnectError"):
        place(peers, router, "only-b@b")


def test_without_peers_a_request_is_placed_as_before() -> None:
    lonely = PeerMonitor(dict, httpx.AsyncClient(), "a")
    peers = Peers("a", lonely, lonely.http, Affinity())
    router = Router("local")
    router.scheduler.fits = False
    assert place(peers, router, "local") == "local"
    assert place(peers, router, "local@a") == "local"
    assert place(peers, router, "claude-x") == "local" and router.mapped
