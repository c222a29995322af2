"""`mlxctl register PATH --command '...'`: an external server command kept in the registry."""

from __future__ import annotations

from pathlib import Path

from mlxctl.factory import make_model
from mlxctl.registry import Registry
from tests.cli.runner import Run


def test_register_keeps_the_command(tmp_path: Path, run: Run, registry: Registry) -> None:
    path = make_model(tmp_path / "tiny")
    command = "python -m mlx_lm server --model {model} --port {port}"
    result = run("register", str(path), "--slug", "ext", "--command", command)
    assert result.code == 0, result.err
    record = registry.get("ext")
    assert record is not None and record.extra["command"] == command
    assert record.extra["has_chat_template"] is True  # the inspected facts are kept


def test_a_command_without_port_is_refused(tmp_path: Path, run: Run, registry: Registry) -> None:
    path = make_model(tmp_path / "tiny")
    result = run("register", str(path), "--slug", "ext", "--command", "srv {model}")
    assert result.code != 0 and "{port}" in result.err
    assert registry.get("ext") is None
