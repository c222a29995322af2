"""Bad input: one clear line, a non-zero exit, and the registry left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxctl.registry import ModelRecord, open_registry
from tests.cli.runner import Run


@pytest.fixture
def seeded() -> list[ModelRecord]:
    registry = open_registry()
    registry.add(ModelRecord(slug="jerry-xl", cache_path="/m/a", repo_id="org/Big", port=8100))
    registry.add(ModelRecord(slug="jerry-s", cache_path="/m/b", repo_id="org/Small"))
    return registry.list()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_model(run: Run, seeded: list[ModelRecord]) -> None:
    result = run("show", "jerry-xxl")
    assert result.code != 0
    assert "not registered" in _one_error_line(result.err)
    assert "jerry-xl" in result.err  # the closest name
    assert open_registry().list() == seeded


def test_malformed_registry_json(run: Run, seeded: list[ModelRecord], tmp_path: Path) -> None:
    bad = tmp_path / "registry.json"
    bad.write_text('{"version": 1,\n "models": {\n  "new": {"cache_path": "/x", "port": "x"}}}')
    result = run("registry", "import", str(bad))
    assert result.code != 0
    assert f"{bad}:3: models.new.port" in _one_error_line(result.err)
    bad.write_text("{not json")
    assert "not valid JSON" in _one_error_line(run("registry", "import", str(bad)).err)
    assert open_registry().list() == seeded


def test_duplicate_port(run: Run, seeded: list[ModelRecord], tmp_path: Path) -> None:
    result = run("registry", "set", "jerry-s", "--port", "8100")
    assert result.code != 0 and "port 8100" in _one_error_line(result.err)
    clash = tmp_path / "clash.json"
    clash.write_text(
        json.dumps({"version": 1, "models": {"other": {"cache_path": "/o", "port": 8100}}})
    )
    imported = run("registry", "import", str(clash))
    assert imported.code != 0 and "port 8100" in _one_error_line(imported.err)
    assert open_registry().list() == seeded


def test_invalid_slug(run: Run, seeded: list[ModelRecord]) -> None:
    result = run("registry", "set", "jerry-s", "--slug", "Not A Slug")
    assert result.code != 0 and "invalid slug" in _one_error_line(result.err)
    assert open_registry().list() == seeded


def test_out_of_range_port(run: Run, seeded: list[ModelRecord]) -> None:
    result = run("registry", "set", "jerry-s", "--port", "70000")
    assert result.code != 0 and "70000" in _one_error_line(result.err)
    assert open_registry().list() == seeded


def test_export_import_round_trip_into_empty_home(
    run: Run, seeded: list[ModelRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "registry.json"
    assert run("registry", "export", "--json", "-o", str(out)).code == 0
    exported = run("registry", "export", "--json").out
    monkeypatch.setenv("MLXCTL_HOME", str(tmp_path / "other-home"))
    assert open_registry().list() == []
    assert run("registry", "import", str(out)).code == 0
    assert open_registry().list() == seeded
    assert run("registry", "export", "--json").out == exported
