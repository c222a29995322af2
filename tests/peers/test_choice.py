"""Which peer takes a model, and the conversation key: pure decisions, no daemons."""

from __future__ import annotations

from typing import Any

from mlxctl.peers.affinity import Affinity, prefix_key
from mlxctl.peers.choice import candidates
from mlxctl.peers.view import PeerView


def peer(
    name: str, *, loaded: bool = False, busy: int = 0, free: int = 10, up: bool = True
) -> PeerView:
    rows: list[dict[str, Any]] = []
    if loaded:
        rows = [{"model": "m", "state": "ready", "in_flight": busy, "options": {"max_batch": 2}}]
    view = PeerView(name, f"http://{name}", None, up=up, free_bytes=free)
    view.models = [{"slug": "m", "repo_id": "org/m", "size_bytes": 5}]
    view.loaded = rows
    return view


def names(found: list[Any]) -> list[str]:
    return [t.peer.name for t in found]


def test_loaded_first_then_room_then_the_rest_and_never_a_down_peer() -> None:
    views = [peer("full", free=1), peer("roomy"), peer("ready", loaded=True)]
    views.append(peer("gone", up=False))
    assert names(candidates("m", views)) == ["ready", "roomy", "full"]
    assert names(candidates("org/m", views, ready_only=True)) == ["ready", "roomy"]
    assert candidates("other", views) == []


def test_new_conversations_rotate_and_a_known_one_sticks_unless_saturated() -> None:
    views = [peer("b", loaded=True), peer("c", loaded=True)]
    assert [names(candidates("m", views, turn=t))[0] for t in range(3)] == ["b", "c", "b"]
    assert names(candidates("m", views, sticky="c", turn=0))[0] == "c"
    views[1] = peer("c", loaded=True, busy=2)  # at its batch limit
    assert names(candidates("m", views, sticky="c", turn=0)) == ["b", "c"]


def test_turns_of_one_conversation_share_a_key_across_dialects() -> None:
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    later = [*first, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]
    key = prefix_key("m", {"messages": first})
    assert key == prefix_key("m", {"messages": later})
    assert key != prefix_key("m", {"messages": [{"role": "user", "content": "other"}]})
    assert key != prefix_key("n", {"messages": first})
    anthropic = prefix_key("m", {"system": "s", "messages": first[1:]})
    assert anthropic == prefix_key("m", {"system": "s", "messages": later[1:]})
    assert prefix_key("m", {"prompt": "x" * 2000}) == prefix_key("m", {"prompt": "x" * 1500})
    assert prefix_key("m", {}) is None


def test_affinity_forgets_the_least_recently_used() -> None:
    memory = Affinity(size=2)
    memory.remember("k1", "b")
    memory.remember("k2", "c")
    assert memory.host("k1") == "b"  # k1 used: k2 is now the oldest
    memory.remember("k3", "b")
    assert (memory.host("k1"), memory.host("k2"), memory.host("k3")) == ("b", None, "b")
    memory.remember(None, "b")
    assert memory.host(None) is None
