"""Shared fixtures: every test gets its own MLXCTL_HOME and HF cache; `run` runs the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlxctl.cli.main import main
from mlxctl.registry import Registry, open_registry
from mlxctl.settings import Settings
from tests.cli.runner import Result, Run

# Session fixtures shared by several folders: the model store's (registries, hub, tiny
# model), and the config tests' daemon.
pytest_plugins = ["tests.store.fixtures", "tests.config.daemon"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test touches the user's files: home and HF cache live in a temp dir."""
    home = tmp_path / "mlxctl-home"
    monkeypatch.setenv("MLXCTL_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("MLXCTL_DEBUG", raising=False)
    # The CLI talks to the daemon MLXCTL_HOST names: a test chooses its own, or none.
    monkeypatch.delenv("MLXCTL_HOST", raising=False)
    monkeypatch.delenv("MLXCTL_API_KEY", raising=False)
    monkeypatch.delenv("MLXCTL_CONFIG", raising=False)  # config.yaml: the one in home, if any
    yield home


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = open_registry(settings)
    yield reg
    reg.db.close()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def _run(*args: str, input: str | None = None) -> Result:
        if input is not None:
            import io

            monkeypatch.setattr("sys.stdin", io.StringIO(input))
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run
