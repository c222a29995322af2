"""One real daemon per session for the config tests (tests/config, tests/cli): fake
workers, the watcher off; each test writes config.yaml and reloads it. A plugin of
tests/conftest.py, so both folders share the one daemon."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, fake_worker_command, launch

FAKE = fake_worker_command("--tokens-per-second", "40")
# Stub models the fake workers serve: (slug, size in bytes).
MODELS = {"m1": 1000, "big": 3 << 30, "small": 100 << 20, "keep": 600 << 20, "other": 600 << 20}


@dataclass
class Shared:
    daemon: Daemon
    config: Path
    env: dict[str, str]

    def use(self, text: str) -> dict[str, object]:
        """Write config.yaml, reload it, and start from nothing loaded."""
        self.config.write_text(text)
        client = self.daemon.client()
        reloaded = client.post("/api/admin/config/reload")
        assert reloaded.status_code == 200, reloaded.text
        for slug in self.daemon.ps():
            client.post("/api/admin/unload", json={"model": slug})
        deadline = time.monotonic() + 10
        while self.daemon.ps():
            assert time.monotonic() < deadline, "models did not unload"
            time.sleep(0.05)
        report: dict[str, object] = reloaded.json()
        return report

    def chat(self, model: str, **body: object) -> httpx.Response:
        messages = [{"role": "user", "content": "hi"}]
        payload = {"model": model, "messages": messages, **body}
        return self.daemon.client().post("/v1/chat/completions", json=payload)


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("config-daemon")
    home = root / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLXCTL_")},
        "MLXCTL_HOME": str(home),
        "HF_HUB_CACHE": str(root / "hf-cache"),
        "MLXCTL_HOST": "127.0.0.1:0",
        "MLXCTL_WORKER_COMMAND": FAKE,
        "MLXCTL_CONFIG_WATCH": "0",
    }
    registry = open_registry(Settings.from_env(env))
    try:
        for slug, size in MODELS.items():
            registry.add(ModelRecord(slug=slug, cache_path=f"/stub/{slug}", size_bytes=size))
    finally:
        registry.db.close()
    daemon = launch(env, root / "daemon.log")
    try:
        yield Shared(daemon, home / "config.yaml", {**env, "MLXCTL_HOST": daemon.url})
    finally:
        daemon.stop(signal.SIGTERM, timeout=30)
