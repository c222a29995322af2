"""The slot table from the settings, and what a user may type to name a slot."""

from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings
from mlxctl.slots.table import resolve_slot, slot_table


def test_slot_table_from_settings() -> None:
    settings = Settings.from_env({"MLXCTL_SLOT_BASE_PORT": "9000", "MLXCTL_SLOT_ALIASES": "a, b"})
    assert [(s.port, s.alias) for s in slot_table(settings)] == [(9000, "a"), (9001, "b")]
    assert len(slot_table(Settings.from_env({}))) == 10
    with pytest.raises(InvalidInput, match="distinct"):
        slot_table(Settings.from_env({"MLXCTL_SLOT_ALIASES": "a,a"}))
    with pytest.raises(InvalidInput, match="not a slot"):
        resolve_slot("8110", slot_table(Settings.from_env({})))


@pytest.mark.parametrize("reference", ["\u00b2", "\u0668\u0661\u0660\u0660", "8100\u00b2"])
def test_other_scripts_digits_are_not_a_port(reference: str) -> None:
    # "²".isdigit() is true but int("²") raises: the slot routes answered 500.
    with pytest.raises(InvalidInput, match="not a slot"):
        resolve_slot(reference, slot_table(Settings.from_env({})))
