from __future__ import annotations

import sqlite3

import pytest

from mlxctl.errors import Conflict, InvalidInput, NotFound
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.migrations import MIGRATIONS, applied, migrate


def rec(slug: str, port: int | None = None, **kw: object) -> ModelRecord:
    return ModelRecord(slug=slug, cache_path=f"/models/{slug}", port=port, **kw)  # type: ignore[arg-type]


def test_database_is_wal_and_migrated(registry: Registry) -> None:
    conn = registry.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert applied(registry.db) == [name for name, _ in MIGRATIONS]
    assert migrate(registry.db) == []  # a second run applies nothing


def test_add_get_list_update_remove(registry: Registry) -> None:
    registry.add(rec("b-model", repo_id="org/B"))
    registry.add(rec("a-model", port=8100, extra={"k": [1, 2]}))
    assert [r.slug for r in registry.list()] == ["a-model", "b-model"]
    assert registry.get("a-model") == rec("a-model", port=8100, extra={"k": [1, 2]})
    assert registry.by_port(8100) is not None
    updated = registry.update("a-model", port=8101, tool_call_parser="json_tools")
    assert updated.port == 8101 and registry.get("a-model") == updated
    renamed = registry.update("a-model", slug="c-model")
    assert registry.get("a-model") is None and registry.get("c-model") == renamed
    assert registry.remove("c-model").slug == "c-model"
    with pytest.raises(NotFound):
        registry.remove("c-model")


def test_duplicate_port_is_refused_and_nothing_changes(registry: Registry) -> None:
    registry.add(rec("one", port=8100))
    registry.add(rec("two"))
    before = registry.list()
    with pytest.raises(Conflict, match="port 8100"):
        registry.update("two", port=8100)
    with pytest.raises(Conflict, match="port 8100"):
        registry.add(rec("three", port=8100))
    assert registry.list() == before


def test_duplicate_slug_is_refused(registry: Registry) -> None:
    registry.add(rec("one"))
    with pytest.raises(Conflict, match="already registered"):
        registry.add(rec("one"))


@pytest.mark.parametrize("slug", ["", "Upper", "-dash", "with space", "a/b", "x" * 129])
def test_invalid_slugs_are_refused(registry: Registry, slug: str) -> None:
    with pytest.raises(InvalidInput, match="invalid slug"):
        registry.add(rec(slug))
    assert registry.list() == []


def test_database_itself_enforces_slug_and_port(registry: Registry) -> None:
    """The constraints hold even for a writer that bypasses our validation."""
    with registry.db.write() as conn:
        conn.execute(
            "INSERT INTO models (slug, cache_path, format, port, created_at, updated_at)"
            " VALUES ('ok', '/x', 'mlx', 8100, 'now', 'now')"
        )
    for slug, port in (("Bad Slug", None), ("other", 8100), ("ok", None), ("p", 70000)):
        with pytest.raises(sqlite3.IntegrityError), registry.db.write() as conn:
            conn.execute(
                "INSERT INTO models (slug, cache_path, format, port, created_at, updated_at)"
                " VALUES (?, '/x', 'mlx', ?, 'now', 'now')",
                (slug, port),
            )
    assert [r.slug for r in registry.list()] == ["ok"]


def test_add_many_is_all_or_nothing(registry: Registry) -> None:
    registry.add(rec("keep", port=8105))
    with pytest.raises(Conflict):
        registry.add_many([rec("new1"), rec("new2", port=8105)])
    assert [r.slug for r in registry.list()] == ["keep"]


def test_add_many_can_swap_ports(registry: Registry) -> None:
    registry.add_many([rec("a", port=8100), rec("b", port=8101)])
    registry.add_many([rec("a", port=8101), rec("b", port=8100)])
    assert registry.get("a").port == 8101  # type: ignore[union-attr]


def test_update_rejects_unknown_fields(registry: Registry) -> None:
    registry.add(rec("one"))
    with pytest.raises(InvalidInput, match="cannot change"):
        registry.update("one", size_bytes=3)
