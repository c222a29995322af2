"""Run the real `mlxctl` entry point in-process and capture what it prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlxctl.factory import lay_out_hf_cache, make_model
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two factory models (built once per session) to lay out in each test's HF cache."""
    root = tmp_path_factory.mktemp("factory")
    return {
        "qwen2": make_model(root / "qwen2", arch="qwen2", size="tiny"),
        "llama": make_model(root / "llama", arch="llama", size="tiny", quantize_bits=4),
    }


@pytest.fixture
def hf_cache(tiny_model_dirs: dict[str, Path], isolated_home: Path) -> Path:
    """The test's HF cache with both factory models laid out as downloads."""
    cache = isolated_home.parent / "hf-cache"
    lay_out_hf_cache(tiny_model_dirs["qwen2"], cache, "mlxctl-factory/tiny-qwen2")
    lay_out_hf_cache(tiny_model_dirs["llama"], cache, "mlxctl-factory/tiny-llama-4bit")
    return cache


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A real `mlxctl serve` per test module, the tiny qwen2 registered as `q`."""
    with module_daemon(tmp_path_factory.mktemp("daemon")) as running:
        yield running


@pytest.fixture
def daemon_host(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """`daemon`, made the one the CLI talks to (MLXCTL_HOST)."""
    monkeypatch.setenv("MLXCTL_HOST", f"127.0.0.1:{daemon.port}")
    return daemon
