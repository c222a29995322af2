"""The slots table: fixed ports with stable aliases, the model each should serve, and
what was last seen serving there.

`model` is the desired state (the registry is the source of truth); `pid`,
`started_at` and `live_model` are the live state the daemon last observed. Triggers
from `m002_slots` keep `models.port` equal to the slot's port, so assigning here or
through `models.port` is the same change, and the UNIQUE constraints make one port
one model, one model one port.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlxctl.errors import Conflict, NotFound
from mlxctl.registry.db import Database
from mlxctl.registry.migrations import migrate


@dataclass(frozen=True)
class SlotRecord:
    port: int
    alias: str
    model: str | None = None
    pid: int | None = None
    started_at: str | None = None
    live_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _record(row: sqlite3.Row) -> SlotRecord:
    return SlotRecord(
        port=row["port"],
        alias=row["alias"],
        model=row["model"],
        pid=row["pid"],
        started_at=row["started_at"],
        live_model=row["live_model"],
    )


class Slots:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)

    # Reads -----------------------------------------------------------------

    def list(self) -> list[SlotRecord]:
        return [_record(r) for r in self.db.read("SELECT * FROM slots ORDER BY port")]

    def get(self, port: int) -> SlotRecord | None:
        rows = self.db.read("SELECT * FROM slots WHERE port = ?", (port,))
        return _record(rows[0]) if rows else None

    def by_model(self, slug: str) -> SlotRecord | None:
        rows = self.db.read("SELECT * FROM slots WHERE model = ?", (slug,))
        return _record(rows[0]) if rows else None

    # Writes ----------------------------------------------------------------

    def sync_table(self, table: Sequence[tuple[int, str]]) -> None:
        """Make the rows match the configured ports and aliases.

        Rows for ports no longer configured are dropped only when nothing is assigned
        there, so changing the range never silently forgets a desired model.
        """
        ports = {port for port, _ in table}
        with self.db.write() as conn:
            for row in conn.execute("SELECT port, model FROM slots").fetchall():
                if row["port"] not in ports and row["model"] is None:
                    conn.execute("DELETE FROM slots WHERE port = ?", (row["port"],))
            # Aliases may move between ports: park them first so UNIQUE never trips mid-way.
            conn.execute("UPDATE slots SET alias = '~' || port")
            for port, alias in table:
                conn.execute(
                    "INSERT INTO slots (port, alias, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (port) DO UPDATE SET alias = excluded.alias",
                    (port, alias, _now()),
                )

    def assign(self, port: int, slug: str) -> SlotRecord:
        """Desire `slug` on `port` (the model's `port` follows); refuses taken slots."""
        with self.db.write() as conn:
            slot = self._row(conn, port)
            if slot.model not in (None, slug):
                raise Conflict(
                    f"slot {port} ({slot.alias}) is assigned to '{slot.model}'",
                    hint=f"unload it first: mlxctl unload {port}",
                )
            other = conn.execute(
                "SELECT port, alias FROM slots WHERE model = ? AND port <> ?", (slug, port)
            ).fetchone()
            if other is not None:
                raise Conflict(
                    f"model '{slug}' is already on slot {other['port']} ({other['alias']})",
                    hint=f"one model, one slot: unload it first (mlxctl unload {other['port']})",
                )
            try:
                conn.execute(
                    "UPDATE slots SET model = ?, updated_at = ? WHERE port = ?",
                    (slug, _now(), port),
                )
            except sqlite3.IntegrityError as e:
                raise Conflict(f"cannot assign '{slug}' to slot {port}: {e}") from None
            return self._row(conn, port)

    def clear(self, port: int) -> SlotRecord:
        """No model desired on `port`; returns the slot as it was."""
        with self.db.write() as conn:
            before = self._row(conn, port)
            conn.execute(
                "UPDATE slots SET model = NULL, updated_at = ? WHERE port = ?", (_now(), port)
            )
            return before

    def set_live(
        self, port: int, *, pid: int | None, live_model: str | None, started_at: str | None
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE slots SET pid = ?, live_model = ?, started_at = ?, updated_at = ?"
                " WHERE port = ?",
                (pid, live_model, started_at, _now(), port),
            )

    def _row(self, conn: sqlite3.Connection, port: int) -> SlotRecord:
        row = conn.execute("SELECT * FROM slots WHERE port = ?", (port,)).fetchone()
        if row is None:
            raise NotFound(f"there is no slot on port {port}")
        return _record(row)
