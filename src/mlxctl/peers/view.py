"""What this daemon knows of one peer: up or down, its registered and loaded models, its
free budget; read from the peer's own admin routes by the monitor (`monitor.py`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PeerView:
    """One peer as last read. `models` are its registry rows (`GET /api/admin/models`),
    `loaded` its ps rows and `free_bytes` its budget (`GET /api/admin/status`)."""

    name: str
    url: str
    key: str | None
    up: bool = False
    error: str | None = None  # why it is down
    misses: int = 0  # reads failed in a row
    seen: float | None = None  # time.time() of the last good read
    models: list[dict[str, Any]] = field(default_factory=list)
    loaded: list[dict[str, Any]] = field(default_factory=list)
    free_bytes: int | None = None
    budget_bytes: int | None = None

    def slug_of(self, name: str) -> str | None:
        """The peer's slug for `name` (its slug, repo id or model id, exactly), or None."""
        for row in self.models:
            if name in (row.get("slug"), row.get("repo_id"), row.get("model_id")):
                return str(row["slug"])
        return None

    def row_of(self, slug: str) -> dict[str, Any] | None:
        return next((r for r in self.models if r.get("slug") == slug), None)

    def loaded_row(self, slug: str) -> dict[str, Any] | None:
        return next(
            (r for r in self.loaded if r.get("model") == slug and r.get("state") != "queued"),
            None,
        )

    def is_loaded(self, slug: str) -> bool:
        row = self.loaded_row(slug)
        return row is not None and row.get("state") in ("ready", "loading")

    def saturated(self, slug: str) -> bool:
        """At its batch limit for `slug`: more requests would queue there."""
        row = self.loaded_row(slug)
        if row is None:
            return False
        batch = (row.get("options") or {}).get("max_batch")
        in_flight = int(row.get("in_flight") or 0) + int(row.get("waiting") or 0)
        return isinstance(batch, int) and in_flight >= batch

    def fits(self, slug: str) -> bool:
        """Whether a load of `slug` fits the peer's free budget as last read."""
        row = self.row_of(slug)
        size = row.get("size_bytes") if row else None
        return self.free_bytes is not None and isinstance(size, int) and size <= self.free_bytes

    def as_dict(self) -> dict[str, Any]:
        """The row of `GET /api/admin/peers`."""
        return {
            "name": self.name,
            "url": self.url,
            "up": self.up,
            "error": self.error,
            "seen_ago": None if self.seen is None else round(time.time() - self.seen, 3),
            "free_bytes": self.free_bytes,
            "budget_bytes": self.budget_bytes,
            "models": self.models,
            "loaded": self.loaded,
        }
