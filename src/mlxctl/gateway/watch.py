"""What `mlxctl gateway litellm` writes, once or round after round (`--watch`).

`Gateway` holds what the config is made of (slots, hosts, flags) and surveys the
hosts for it. `Watcher` polls every `interval` seconds and hands each round's config
to a sink: the proxy's model API (`ProxySink`: add, repoint, delete; nothing when
nothing changed) or a file rewritten only when its text changes (`FileSink`). A host
that does not answer loses its deployments until it answers again: LiteLLM never
cools a deployment down for a failed connection, so a dead host left in would cost a
failed attempt (a connect timeout, for a machine off the network) on every request
that picks it. A round where no host answers changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlxctl.client import DaemonClient
from mlxctl.client.catalog import registered_models
from mlxctl.errors import MlxctlError
from mlxctl.gateway.hosts import Host, Survey
from mlxctl.gateway.litellm import build_config, host_entries, to_yaml
from mlxctl.gateway.litellm_admin import LiteLLMAdmin, SyncAction, sync
from mlxctl.gateway.survey import HostDown, survey
from mlxctl.slots.table import SlotSpec


@dataclass
class Gateway:
    """The config's ingredients. Without `hosts` it is this daemon alone (its slots,
    and with `include_on_demand` its registered models); with them, every host's."""

    slots: list[SlotSpec]
    slot_host: str
    daemon: Host  # this daemon (MLXCTL_HOST and its key): its slots' key, its on-demand models
    include_on_demand: bool = False
    hosts: list[Host] | None = None
    local: str | None = None  # the name of this daemon among `hosts`

    def config(self, *, strict: bool = True) -> tuple[dict[str, Any], list[HostDown]]:
        """The config, and the hosts that did not answer (left out). `strict`: the first
        one that did not answer is raised instead."""
        if self.hosts is None:
            return self._single(), []
        surveys: list[Survey] = []
        down: list[HostDown] = []
        for host in self.hosts:
            try:
                surveys.append(survey(host))
            except HostDown as e:
                if strict:
                    raise
                down.append(e)
        taken = [slot.alias for slot in self.slots]
        entries = host_entries(
            surveys, self.local, include_on_demand=self.include_on_demand, taken=taken
        )
        return self._build(hosts=entries), down

    def _single(self) -> dict[str, Any]:
        if not self.include_on_demand:
            return self._build()
        with DaemonClient(self.daemon.url, self.daemon.key) as client:
            on_demand = [str(m["id"]) for m in registered_models(client)]
        return self._build(on_demand=on_demand, daemon_url=self.daemon.url)

    def _build(self, **extra: Any) -> dict[str, Any]:
        keyed = self.daemon.key is not None
        return build_config(self.slots, self.slot_host, keyed=keyed, **extra)


class Sink(Protocol):
    def __call__(self, config: dict[str, Any]) -> list[str]: ...


class ProxySink:
    """Applies each config to a running proxy through its model API."""

    def __init__(self, admin: LiteLLMAdmin) -> None:
        self.admin = admin
        self._conflicts: set[tuple[str, str | None]] = set()

    def __call__(self, config: dict[str, Any]) -> list[str]:
        lines = []
        for step in sync(self.admin, config["model_list"]):
            if step.action == "conflict":  # said once, not every round
                if (step.model_name, step.model_id) in self._conflicts:
                    continue
                self._conflicts.add((step.model_name, step.model_id))
            if step.action != "unchanged":
                lines.append(describe(step))
        return lines


class FileSink:
    """Rewrites `path` (atomically, owner-only: it may hold peers' keys) on change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, config: dict[str, Any]) -> list[str]:
        text = to_yaml(config)
        if self.path.exists() and self.path.read_text() == text:
            return []
        write_private(self.path, text)
        return [f"wrote {self.path} ({len(config['model_list'])} models)"]


def write_private(path: Path, text: str) -> None:
    """`text` to `path` through a temp file and a rename, readable by the owner only."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temp, path)


def describe(step: SyncAction) -> str:
    note = " (not created by mlxctl: left as it is)" if step.action == "conflict" else ""
    return f"{step.action:9} {step.model_name}{note}"


@dataclass
class Watcher:
    """Polls `gateway` every `interval` seconds and hands each config to `sink`."""

    gateway: Gateway
    sink: Sink
    interval: float
    say: Callable[[str], None]
    sleep: Callable[[float], None] = time.sleep
    _down: set[str] = field(default_factory=set)

    def run(self, rounds: int | None = None) -> None:
        done = 0
        while rounds is None or done < rounds:
            if done:
                self.sleep(self.interval)
            self.round()
            done += 1

    def round(self) -> None:
        """One poll and apply; an error is said and the next round tries again."""
        try:
            config, down = self.gateway.config(strict=False)
            names = {error.host.name for error in down}
            for error in down:
                if error.host.name not in self._down:
                    self.say(f"down      {error.message}")
            for name in sorted(self._down - names):
                self.say(f"up        host '{name}' answers again")
            self._down = names
            if self.gateway.hosts and len(names) == len(self.gateway.hosts):
                return  # nobody answered: more likely our own network; change nothing
            for line in self.sink(config):
                self.say(line)
        except MlxctlError as e:
            self.say(f"error     {e.message}" + (f" ({e.hint})" if e.hint else ""))
