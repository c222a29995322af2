"""Every operation on the registry and the store, written once.

Each `Operation` is a function `(Context, Args) -> dict` of plain JSON data, plus the
admin route that exposes it. The daemon runs them behind `/api/admin/...`
(`api/admin/operations.py`, on its own registry and store); the CLI calls the daemon's
route when a daemon answers and the function itself when none does
(`cli/backend.py`), and draws the same output from the same data either way.

    models.py    list, show, modelfile, init, register, rm
    registry.py  registry.json export/import, set fields
    store.py     pull, push, create, cp, prune, verify (pull/push/create/verify stream
                 their progress)

Sits above `registry`, `store` and `library`; below `api` and `cli`.
"""

from typing import Any

from mlxctl.operations import models, registry, store
from mlxctl.operations.base import Args, Context, Operation, Result

OPERATIONS: tuple[Operation[Any], ...] = (
    models.LIST,
    models.SHOW,
    models.MODELFILE,
    models.INIT,
    models.REGISTER,
    models.RM,
    registry.EXPORT,
    registry.IMPORT,
    registry.SET,
    store.PULL,
    store.PUSH,
    store.CREATE,
    store.COPY,
    store.PRUNE,
    store.VERIFY,
)

__all__ = ["OPERATIONS", "Args", "Context", "Operation", "Result"]
