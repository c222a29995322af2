"""Which peers may take a request for a model, in the order to try them; decided purely.

Peers with the model loaded and below their batch limit come first, then those whose
free budget fits a load of it, then the rest that have it registered (they evict or
queue). Within a group the start rotates, so conversations spread over the hosts; the
host a conversation stuck to (affinity) goes first unless it is saturated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlxctl.peers.view import PeerView


@dataclass(frozen=True)
class Target:
    """A peer and its own name (slug) for the model asked for."""

    peer: PeerView
    slug: str


def candidates(
    name: str,
    views: Sequence[PeerView],
    *,
    sticky: str | None = None,
    turn: int = 0,
    ready_only: bool = False,
) -> list[Target]:
    """The up peers that have `name`, best first; `ready_only` keeps only those that can
    serve it now (loaded and not saturated, or with room to load it)."""
    having = [Target(v, slug) for v in views if v.up and (slug := v.slug_of(name)) is not None]
    ready = [t for t in having if t.peer.is_loaded(t.slug) and not t.peer.saturated(t.slug)]
    roomy = [t for t in having if not t.peer.is_loaded(t.slug) and t.peer.fits(t.slug)]
    rest = [] if ready_only else [t for t in having if t not in ready and t not in roomy]
    ordered = [*_rotated(ready, turn), *_rotated(roomy, turn), *rest]
    first = next((t for t in [*ready, *roomy] if t.peer.name == sticky), None)
    if first is not None:
        ordered.remove(first)
        ordered.insert(0, first)
    return ordered


def _rotated(targets: list[Target], turn: int) -> list[Target]:
    if not targets:
        return targets
    start = turn % len(targets)
    return targets[start:] + targets[:start]
