"""The models table: add, update, remove and list registered models.

Every method that changes rows runs in one `Database.write()` transaction, and
constraint violations (taken slug, taken port, invalid slug) come back as
`Conflict`/`InvalidInput` with the database left as it was.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlxctl.errors import Conflict, InvalidInput, NotFound
from mlxctl.registry.db import Database
from mlxctl.registry.migrations import migrate
from mlxctl.registry.record import ModelRecord, check_port, check_slug
from mlxctl.registry.resolve import resolve_exact, resolve_reference
from mlxctl.settings import Settings

T = TypeVar("T")
_COLUMNS = [name for name in ModelRecord.field_names()]
_EDITABLE = {
    "slug",
    "port",
    "chat_template",
    "tool_call_parser",
    "reasoning_parser",
    "repo_id",
    "model_id",
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _row_to_record(row: sqlite3.Row) -> ModelRecord:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    values["extra"] = json.loads(values["extra"] or "{}")
    return ModelRecord(**values)


def _record_values(record: ModelRecord) -> dict[str, Any]:
    values = record.to_dict()
    values["extra"] = json.dumps(values["extra"], sort_keys=True)
    return values


@contextmanager
def _constraints(record: ModelRecord | None = None) -> Iterator[None]:
    """Turn SQLite constraint failures into one clear line."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        text = str(e)
        if "models.port" in text and record is not None:
            raise Conflict(
                f"port {record.port} is already assigned to another model",
                hint="one port, one model: unassign it first (mlxctl registry set MODEL --no-port)",
            ) from None
        if "models.slug" in text and record is not None:
            raise Conflict(f"a model named '{record.slug}' is already registered") from None
        if "CHECK constraint" in text:
            raise InvalidInput(f"rejected by the registry: {text}") from None
        raise Conflict(f"rejected by the registry: {text}") from None


class Registry:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)

    # Reads -----------------------------------------------------------------

    def list(self) -> list[ModelRecord]:
        rows = self.db.read("SELECT * FROM models ORDER BY slug")
        return [_row_to_record(r) for r in rows]

    def get(self, slug: str) -> ModelRecord | None:
        rows = self.db.read("SELECT * FROM models WHERE slug = ?", (slug,))
        return _row_to_record(rows[0]) if rows else None

    def resolve(self, reference: str) -> ModelRecord:
        """A model by slug, repo id, model id or unambiguous prefix (see `resolve`)."""
        return resolve_reference(reference, self.list())

    def resolve_exact(self, reference: str) -> ModelRecord:
        """A model by exact slug, repo id or model id: what destructive calls use."""
        return resolve_exact(reference, self.list())

    def by_port(self, port: int) -> ModelRecord | None:
        rows = self.db.read("SELECT * FROM models WHERE port = ?", (port,))
        return _row_to_record(rows[0]) if rows else None

    def by_cache_path(self, cache_path: str) -> ModelRecord | None:
        rows = self.db.read("SELECT * FROM models WHERE cache_path = ?", (cache_path,))
        return _row_to_record(rows[0]) if rows else None

    # Writes ----------------------------------------------------------------

    def add(self, record: ModelRecord) -> ModelRecord:
        record.validate()
        with self.db.write() as conn, _constraints(record):
            _insert(conn, record)
        return record

    def add_many(self, records: Iterable[ModelRecord], *, replace_all: bool = False) -> int:
        """Insert or update records by slug, all in one transaction (all or nothing)."""
        records = [r.validate() for r in records]
        count = 0
        with self.db.write() as conn:
            if replace_all:
                conn.execute("DELETE FROM models")
            # Ports are released first so a swap of two ports inside one import is not a conflict.
            slugs = [r.slug for r in records]
            conn.executemany("UPDATE models SET port = NULL WHERE slug = ?", [(s,) for s in slugs])
            for record in records:
                with _constraints(record):
                    conn.execute("DELETE FROM models WHERE slug = ?", (record.slug,))
                    _insert(conn, record)
                count += 1
        return count

    def update(self, slug: str, /, **changes: Any) -> ModelRecord:
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a registered model")
        if "slug" in changes:
            check_slug(changes["slug"])
        if changes.get("port") is not None:
            check_port(changes["port"])
        with self.db.write() as conn:
            rows = conn.execute("SELECT * FROM models WHERE slug = ?", (slug,)).fetchall()
            if not rows:
                raise NotFound(f"model '{slug}' is not registered")
            updated = replace(_row_to_record(rows[0]), **changes).validate()
            sets = ", ".join(f"{k} = :{k}" for k in changes)
            with _constraints(updated):
                conn.execute(
                    f"UPDATE models SET {sets}, updated_at = :updated_at WHERE slug = :old_slug",
                    {**changes, "updated_at": _now(), "old_slug": slug},
                )
        return updated

    def remove(self, slug: str) -> ModelRecord:
        with self.db.write() as conn:
            rows = conn.execute("SELECT * FROM models WHERE slug = ?", (slug,)).fetchall()
            if not rows:
                raise NotFound(f"model '{slug}' is not registered")
            conn.execute("DELETE FROM models WHERE slug = ?", (slug,))
        return _row_to_record(rows[0])


def _insert(conn: sqlite3.Connection, record: ModelRecord) -> None:
    values = _record_values(record)
    now = _now()
    values.update(created_at=now, updated_at=now)
    names = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    conn.execute(f"INSERT INTO models ({names}) VALUES ({marks})", values)


def open_registry(settings: Settings | None = None) -> Registry:
    settings = settings or Settings.from_env()
    return Registry(Database(settings.registry_path, busy_timeout=settings.db_busy_timeout))


def with_registry(settings: Settings, work: Callable[[Registry], T]) -> T:
    """`work` with a registry connection of its own, closed after: for worker threads,
    which must not share the event loop's connection."""
    registry = open_registry(settings)
    try:
        return work(registry)
    finally:
        registry.db.close()
