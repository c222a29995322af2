"""The configured slots: ports and aliases from the settings, and what a user may type.

A slot is named by its port (`8101`) or its alias (`jerry-l`); anything else is one
clear error naming the valid range and aliases.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlxctl.errors import InvalidInput
from mlxctl.registry.record import SLUG_RE
from mlxctl.settings import Settings


@dataclass(frozen=True)
class SlotSpec:
    port: int
    alias: str


def slot_table(settings: Settings) -> list[SlotSpec]:
    aliases = [a.strip() for a in settings.slot_aliases.split(",") if a.strip()]
    if not aliases:
        raise InvalidInput("MLXCTL_SLOT_ALIASES is empty: name at least one slot")
    bad = [a for a in aliases if not SLUG_RE.match(a)]
    if bad or len(set(aliases)) != len(aliases):
        raise InvalidInput(
            f"MLXCTL_SLOT_ALIASES={settings.slot_aliases!r}: aliases must be distinct slugs"
        )
    base = settings.slot_base_port
    if not base >= 1 or base + len(aliases) - 1 > 65535:
        raise InvalidInput(f"MLXCTL_SLOT_BASE_PORT={base}: the slots do not fit in 1-65535")
    return [SlotSpec(base + i, alias) for i, alias in enumerate(aliases)]


def resolve_slot(reference: str | int, table: list[SlotSpec]) -> SlotSpec:
    """A slot by port or alias; out-of-range ports and unknown aliases name the valid ones."""
    text = str(reference).strip()
    first, last = table[0].port, table[-1].port
    if text.isascii() and text.isdigit():  # "²".isdigit() too, but int() refuses it
        port = int(text)
        for spec in table:
            if spec.port == port:
                return spec
        raise InvalidInput(
            f"port {port} is not a slot: slots are ports {first}-{last}",
            hint="see `mlxctl status` for the slots and their aliases",
        )
    for spec in table:
        if spec.alias == text.lower():
            return spec
    aliases = ", ".join(spec.alias for spec in table)
    raise InvalidInput(f"'{text}' is not a slot: use a port {first}-{last} or an alias ({aliases})")


def looks_like_slot(reference: str, table: list[SlotSpec]) -> bool:
    text = reference.strip().lower()
    return text.isdigit() or any(spec.alias == text for spec in table)
