"""`mlxctl config check|show|reload`, `settings` sources, `load --preset`, `verify`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.runner import Run
from tests.config.daemon import Shared


def test_check_names_the_line_and_field_of_a_bad_file(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("presets:\n  fast:\n    max_batch: 2\n    contxt: 8\n")
    result = run("config", "check", str(bad))
    assert result.code == 2
    assert f"{bad}:4: presets.fast.contxt:" in result.err
    assert "config in use is unchanged" in result.err
    good = tmp_path / "good.yaml"
    good.write_text("presets:\n  fast:\n    max_batch: 2\naliases:\n  auto: [a]\n")
    assert (
        "ok (0 settings, 0 model sections, 1 aliases, 1 presets)"
        in run("config", "check", str(good)).ok().out
    )


def test_check_without_a_file_says_where_it_looked(run: Run, isolated_home: Path) -> None:
    result = run("config", "check")
    assert result.code == 3 and str(isolated_home / "config.yaml") in result.err


def test_settings_shows_where_each_value_came_from(
    run: Run, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.yaml").write_text("settings:\n  keep_alive: 10m\n")
    monkeypatch.setenv("MLXCTL_MAX_QUEUE", "7")
    out = run("settings").ok().out
    assert "MLXCTL_KEEP_ALIVE=10m  [file]" in out
    assert "MLXCTL_MAX_QUEUE=7  [env]" in out
    assert "MLXCTL_MEMORY_BUDGET=75%  [default]" in out
    data = run("settings", "--json").ok().json()
    assert data["keep_alive"] == {"env": "MLXCTL_KEEP_ALIVE", "value": "10m", "source": "file"}


def test_a_bad_config_file_is_one_clear_error_for_every_command(
    run: Run, isolated_home: Path
) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.yaml").write_text("settings:\n  keep_alive: [1, 2]\n")
    result = run("settings")
    assert result.code == 2 and "config.yaml:2: settings.keep_alive:" in result.err
    assert "Traceback" not in result.err


def test_load_with_a_preset_reload_show_and_verify(
    run: Run, shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXCTL_HOST", shared.daemon.url)
    shared.use("presets:\n  fast:\n    max_batch: 2\n    context: 512\n")
    out = run("load", "m1", "--preset", "fast").ok().out
    assert "Loaded m1 with preset fast" in out
    row = {r["model"]: r for r in run("ps", "--json").ok().json()}["m1"]
    assert row["preset"] == "fast" and row["options"]["max_batch"] == 2
    # The worker was started with the preset's options (what its audit line records).
    health = httpx.get(row["url"] + "/health", timeout=5).json()["options"]
    assert (health["preset"], health["max_batch"], health["context"]) == ("fast", 2, 512)
    assert "fast" in run("ps").ok().out
    shown_model = run("show", "m1", "--json").ok().json()  # show says it too, from the daemon
    assert shown_model["options"]["preset"] == "fast"
    assert shown_model["options"]["max_batch"] == 2
    assert "max_batch=2" in run("show", "m1").ok().out
    unknown = run("load", "m1", "--preset", "nope")
    assert unknown.code == 2 and "no preset named 'nope'" in unknown.err
    shared.config.write_text(
        "settings:\n  keep_alive: 1h\nmodels:\n  ghost:\n    context: 8\n"
        "presets:\n  fast:\n    max_batch: 2\n    context: 512\n"
    )
    reloaded = run("config", "reload").ok().out
    assert "applied settings: keep_alive" in reloaded
    shown = run("config", "show", "--json").ok().json()
    assert shown["settings"]["keep_alive"] == {"value": "1h", "source": "file"}
    assert shown["models"]["m1"]["preset"] == "fast"  # the load's preset stays
    assert "keep_alive" in run("config", "show").ok().out
    verify = run("verify")
    assert verify.code == 1
    assert "config: models.ghost: no registered model is named 'ghost'" in verify.out


def test_serve_refuses_to_start_on_a_bad_file(run: Run, isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.yaml").write_text("aliases:\n  auto: nothing\n")
    result = run("serve", "--port", "0")
    assert result.code == 2
    assert "config.yaml:2: aliases.auto:" in result.err and "Traceback" not in result.err
