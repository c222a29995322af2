"""The registry: SQLite as the single source of truth for models (and later slots).

`open_registry(settings)` gives a `Registry`; `record.ModelRecord` is its row type.
The registry imports nothing above it (no store, engine, API or CLI).
"""

from mlxctl.registry.db import Database
from mlxctl.registry.models import Registry, open_registry, with_registry
from mlxctl.registry.record import ModelRecord

__all__ = ["Database", "ModelRecord", "Registry", "open_registry", "with_registry"]
