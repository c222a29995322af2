"""The slots table: one port one model, one model one port, `models.port` kept in step."""

from __future__ import annotations

import sqlite3

import pytest

from mlxctl.errors import Conflict, NotFound
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.slots import Slots

TABLE = [(9100, "jerry-xl"), (9101, "jerry-l"), (9102, "jerry-m")]


@pytest.fixture
def slots(registry: Registry) -> Slots:
    for slug in ("a", "b", "c"):
        registry.add(ModelRecord(slug=slug, cache_path=f"/m/{slug}"))
    table = Slots(registry.db)
    table.sync_table(TABLE)
    return table


def test_assign_moves_models_port_and_clear_releases_it(slots: Slots, registry: Registry) -> None:
    slots.assign(9100, "a")
    assert registry.get("a").port == 9100  # type: ignore[union-attr]
    assert slots.by_model("a").port == 9100  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="is assigned to 'a'"):
        slots.assign(9100, "b")
    with pytest.raises(Conflict, match="already on slot 9100"):
        slots.assign(9101, "a")
    slots.clear(9100)
    assert registry.get("a").port is None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        slots.assign(9999, "a")


def test_models_port_drives_the_slot_too(slots: Slots, registry: Registry) -> None:
    registry.update("b", port=9101)
    assert slots.get(9101).model == "b"  # type: ignore[union-attr]
    registry.update("b", port=9102)  # moving the model moves it off the old slot
    assert slots.get(9101).model is None and slots.get(9102).model == "b"  # type: ignore[union-attr]
    registry.update("b", port=None)
    assert slots.get(9102).model is None  # type: ignore[union-attr]
    slots.assign(9100, "a")
    with pytest.raises(Conflict):
        registry.update("c", port=9100)
    assert slots.get(9100).model == "a"  # type: ignore[union-attr]


def test_database_enforces_one_model_one_slot(slots: Slots, registry: Registry) -> None:
    slots.assign(9100, "a")
    with pytest.raises(sqlite3.IntegrityError), registry.db.write() as conn:
        conn.execute("UPDATE slots SET model = 'a' WHERE port = 9101")
    with pytest.raises(sqlite3.IntegrityError), registry.db.write() as conn:
        conn.execute("UPDATE slots SET model = 'ghost' WHERE port = 9101")


def test_rename_cascades_and_removal_frees_the_slot(slots: Slots, registry: Registry) -> None:
    slots.assign(9100, "a")
    registry.update("a", slug="a2")
    assert slots.get(9100).model == "a2"  # type: ignore[union-attr]
    registry.remove("a2")
    assert slots.get(9100).model is None  # type: ignore[union-attr]


def test_sync_table_keeps_assigned_rows_and_moves_aliases(slots: Slots) -> None:
    slots.assign(9102, "c")
    slots.set_live(9102, pid=123, live_model="c", started_at="t")
    slots.sync_table([(9100, "jerry-l"), (9101, "jerry-xl")])
    by_port = {s.port: s for s in slots.list()}
    assert by_port[9100].alias == "jerry-l" and by_port[9101].alias == "jerry-xl"
    assert by_port[9102].model == "c" and by_port[9102].pid == 123
