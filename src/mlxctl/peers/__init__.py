"""Peers: other mlxctl daemons this one forwards to (config.yaml `peers:`,
docs/scale-out.md).

    view.py      PeerView: one peer as last read (up, models, loaded, free budget)
    monitor.py   PeerMonitor: reads every peer's status each second; up/down
    choice.py    which peers may take a model, best first (pure)
    affinity.py  a conversation's prefix → the host that answered it
    forward.py   the caller's request sent to a peer, its answer streamed back
    hosts.py     Peers: `place` (here or Elsewhere) and `forward`, for the dialects
    listing.py   peers' models as `model@host` in the model lists
"""

from mlxctl.peers.forward import SERVED_BY
from mlxctl.peers.hosts import Elsewhere, Peers, peer_sections
from mlxctl.peers.listing import Listed, listed
from mlxctl.peers.monitor import FORWARDED_BY

__all__ = ["FORWARDED_BY", "SERVED_BY", "Elsewhere", "Listed", "Peers", "listed", "peer_sections"]
