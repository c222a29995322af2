"""Where registry and store commands run: on the daemon when one answers, else right here.

The daemon is the one writer of its registry and store, so `list`, `show`, `rm`,
`pull`, `registry …` and the rest go through its admin API whenever a daemon is
there to ask:

- `MLXCTL_HOST` set: that daemon, and only it. Unreachable is an error naming it;
  never a silent fall back to this machine's registry.
- not set: the daemon at the default address if it answers and serves this
  `MLXCTL_HOME` (its /health names the home it serves); else this process opens
  the local registry and store itself.

Both run the same `mlxctl.operations` function and return the same data, so the
commands print the same thing either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import httpx

from mlxctl.client import DaemonClient, parse_address
from mlxctl.model_options import ModelOptions
from mlxctl.operations import Args, Context, Operation, Result
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings
from mlxctl.store.progress import NoProgress, Progress

PROBE_TIMEOUT = 2.0


class Backend(Protocol):
    where: str  # "local", or the daemon's URL

    def run(self, op: Operation[Any], args: Args, progress: Progress | None = None) -> Result:
        """Run `op`; progress events (streamed by the daemon) go to `progress`."""


class LocalBackend:
    where = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, op: Operation[Any], args: Args, progress: Progress | None = None) -> Result:
        registry = open_registry(self.settings)

        def options(record: ModelRecord) -> ModelOptions:
            # config.yaml is read only when an operation asks (a bad file fails that one),
            # the way the daemon reads it at start.
            from mlxctl.config.live import LiveConfig

            live = LiveConfig.start(self.settings, os.environ, registry)
            return live.options.for_model(record)

        try:
            context = Context(self.settings, registry, progress or NoProgress(), options=options)
            return op.run(context, args)
        finally:
            registry.db.close()


class DaemonBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.where = parse_address(settings.host).url

    def run(self, op: Operation[Any], args: Args, progress: Progress | None = None) -> Result:
        with DaemonClient.from_settings(self.settings) as client:
            return client.run(op, args, progress)


def path_arg(path: str) -> str:
    """A path the daemon reads on its machine: a relative one is made absolute here, since
    the daemon's folder is not the user's (on one machine, that names the same file)."""
    if not path or Path(path).is_absolute() or path.startswith("~"):
        return path
    return str(Path(path).absolute())


def backend(settings: Settings | None = None) -> Backend:
    settings = settings or Settings.from_env()
    if os.environ.get("MLXCTL_HOST", "").strip():
        return DaemonBackend(settings)
    return DaemonBackend(settings) if serves_this_home(settings) else LocalBackend(settings)


def serves_this_home(settings: Settings) -> bool:
    """Whether a daemon answers at the default address for this MLXCTL_HOME."""
    try:
        response = httpx.get(
            parse_address(settings.host).url + "/health", timeout=PROBE_TIMEOUT, trust_env=False
        )
        health = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(health, dict) and health.get("home") == settings.home_id
