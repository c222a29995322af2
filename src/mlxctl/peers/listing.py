"""Peers' models where this daemon lists its own (`/v1/models`, `/api/tags`): each up
peer's registered models as `model@host`, and by plain name when no model here (nor an
earlier peer's) has that name. A forwarded request (a peer's monitor) sees none."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from mlxctl.peers.hosts import Peers
from mlxctl.peers.monitor import FORWARDED_BY
from mlxctl.registry import ModelRecord

_FIELDS = frozenset(f.name for f in fields(ModelRecord))


@dataclass(frozen=True)
class Listed:
    """One name to list for a peer's model."""

    name: str
    host: str
    record: ModelRecord  # the peer's registry row


def listed(peers: Peers | None, local: Collection[str], headers: Mapping[str, str]) -> list[Listed]:
    """The names to list beside `local` (this host's names), in peer order."""
    if peers is None or FORWARDED_BY in headers:
        return []
    taken = set(local)
    found = []
    for view in peers.up():
        for row in view.models:
            record = remote_record(row)
            if record is None:
                continue
            found.append(Listed(f"{record.slug}@{view.name}", view.name, record))
            if record.slug not in taken:
                taken.add(record.slug)
                found.append(Listed(record.slug, view.name, record))
    return found


def remote_record(row: Mapping[str, Any]) -> ModelRecord | None:
    """A peer's registry row (`ModelRecord.to_dict`) as a record; None if it is not one."""
    try:
        return ModelRecord(**{k: v for k, v in row.items() if k in _FIELDS})
    except TypeError:
        return None
