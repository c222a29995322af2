"""What `mlxctl verify` finds in a valid config file: names that match no model, presets
and templates that are missing. A file that parses can still point at nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlxctl.config.schema import ConfigFile, ModelSettings
from mlxctl.registry import ModelRecord
from mlxctl.registry.resolve import resolve_exact, resolve_reference


def problems(config: ConfigFile, records: Sequence[ModelRecord]) -> list[str]:
    """One line per problem; empty when every name resolves and every file exists."""
    found = []
    for key, section in config.models.items():
        if not _names(key, records, exact=True):
            found.append(f"models.{key}: no registered model is named '{key}'")
        found += _settings(f"models.{key}", section, records)
    for name, settings in config.presets.items():
        found += _settings(f"presets.{name}", settings, records)
    for alias, members in config.aliases.items():
        missing = [m for m in members if not _names(m, records)]
        if len(missing) == len(members):
            found.append(f"aliases.{alias}: none of its models is registered")
        elif missing:
            found.append(f"aliases.{alias}: not registered: {', '.join(missing)}")
        if _names(alias, records, exact=True):
            found.append(f"aliases.{alias}: a model has this name; the model wins")
    return found


def _settings(where: str, settings: ModelSettings, records: Sequence[ModelRecord]) -> list[str]:
    found = []
    if settings.draft_model is not None and not _names(settings.draft_model, records):
        found.append(f"{where}.draft_model: '{settings.draft_model}' is not registered")
    if settings.chat_template is not None and not Path(settings.chat_template).is_file():
        found.append(f"{where}.chat_template: no file at {settings.chat_template}")
    return found


def _names(name: str, records: Sequence[ModelRecord], *, exact: bool = False) -> bool:
    try:
        (resolve_exact if exact else resolve_reference)(name, records)
    except Exception:
        return False
    return True
