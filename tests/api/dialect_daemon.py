"""One real `mlxctl serve` per test module for the dialect tests, with the real worker.

The function-scoped `start_daemon` of conftest.py would start a daemon (and load a
worker) per test; the dialect tests share one, with its own home, to stay fast.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, launch

TOOLS_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
THOUGHT = "<think>\nFirst, the sky.\n</think>\n\nIt is sunny."


@contextmanager
def module_daemon(
    root: Path, extra_env: dict[str, str] | None = None, options: dict[str, Any] | None = None
) -> Iterator[Daemon]:
    """A daemon whose registry holds the tiny qwen2 model as `q` (test hooks on), with
    `options` as its ModelSpec PARAMETERs (e.g. `num_predict`)."""
    home = root / "home"
    env = {
        **os.environ,
        "MLXCTL_HOME": str(home),
        "HF_HUB_CACHE": str(root / "hf-cache"),
        "MLXCTL_HOST": "127.0.0.1:0",
        "MLXCTL_WORKER_COMMAND": "",
        "MLXCTL_WORKER_TEST_HOOKS": "1",
        **(extra_env or {}),
    }
    model = make_model(root / "models" / "qwen2", arch="qwen2", size="tiny")
    registry = open_registry(Settings.from_env(env))
    try:
        record = register_path(registry, model, slug="q")
        if options:
            extra = {**record.extra, "options": options}
            registry.add_many([dataclasses.replace(record, extra=extra)])
    finally:
        registry.db.close()
    daemon = launch(env, root / "daemon.log")
    try:
        yield daemon
    finally:
        daemon.stop(signal.SIGTERM, timeout=30)


def register(root: Path, slug: str, model: Path) -> None:
    """Register `model` in the registry of `module_daemon(root)`; the daemon reads the
    registry afresh per request, so registering while it runs is enough."""
    registry = open_registry(Settings.from_env({"MLXCTL_HOME": str(root / "home")}))
    try:
        register_path(registry, model, slug=slug)
    finally:
        registry.db.close()


def ps_pids(daemon: Daemon) -> dict[str, int | None]:
    return {name: row["pid"] for name, row in daemon.ps().items()}
