"""Three real daemons as three hosts (a, b, c): separate homes, their own ports, real
workers on one tiny factory model that only b and c have. One set per module; c runs
on a fixed port so a test can kill it and start it again."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, launch

MODEL = "tiny"


@dataclass
class Host:
    """One daemon standing in for one machine."""

    name: str
    env: dict[str, str]
    port: int
    log: Path
    daemon: Daemon | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return Path(self.env["MLXCTL_HOME"]) / "config.yaml"

    def start(self) -> Daemon:
        self.daemon = launch(self.env, self.log, ("--port", str(self.port)))
        return self.daemon

    def up(self) -> Daemon:
        assert self.daemon is not None
        return self.daemon

    def peers(self, **urls: str) -> None:
        """config.yaml's `peers:` (name → URL), reloaded when the daemon runs."""
        lines = ["peers:"] + [f"  {name}:\n    url: {url}" for name, url in urls.items()]
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")
        if self.daemon is not None:
            reloaded = self.daemon.client().post("/api/admin/config/reload")
            assert reloaded.status_code == 200, reloaded.text


@dataclass
class Hosts:
    a: Host
    b: Host
    c: Host
    all: list[Host] = field(default_factory=list)

    def view(self, of: Host) -> dict[str, dict[str, Any]]:
        """`of`'s peers as it last read them, by name."""
        rows = of.up().client().get("/api/admin/peers").json()["peers"]
        return {row["name"]: row for row in rows}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], Any], timeout: float = 20, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Hosts]:
    root = tmp_path_factory.mktemp("peers")
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLXCTL_")}
    made = []
    for name in ("a", "b", "c"):
        env = {
            **base,
            "MLXCTL_HOME": str(root / name),
            "HF_HUB_CACHE": str(root / "hf-cache"),
            "MLXCTL_HOST_NAME": name,
            "MLXCTL_CONFIG_WATCH": "0",
            "MLXCTL_PEER_POLL_INTERVAL": "0.3",
        }
        made.append(Host(name, env, free_port(), root / f"{name}.log"))
    a, b, c = made
    for host in (b, c):
        registry = open_registry(Settings.from_env(host.env))
        try:
            register_path(registry, tiny_model, slug=MODEL)
        finally:
            registry.db.close()
    a.peers(b=b.url, c=c.url)
    found = Hosts(a, b, c, made)
    try:
        for host in made:
            host.start()
        yield found
    finally:
        for host in made:
            if host.daemon is not None:
                host.daemon.stop(signal.SIGTERM, timeout=30)
