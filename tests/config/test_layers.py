"""The daemon settings in layers: environment over file over default, and who said what."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.config.layers import sources
from mlxctl.config.source import ConfigError
from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings


def _home(tmp_path: Path, text: str) -> dict[str, str]:
    (tmp_path / "config.yaml").write_text(text)
    return {"MLXCTL_HOME": str(tmp_path)}


def test_the_file_sets_what_the_environment_leaves(tmp_path: Path) -> None:
    env = _home(tmp_path, "settings:\n  keep_alive: 10m\n  max_loaded_models: 2\n")
    settings = Settings.from_env(env)
    assert (settings.keep_alive, settings.max_loaded_models) == ("10m", 2)
    assert settings.memory_budget == "75%"  # the default
    env["MLXCTL_KEEP_ALIVE"] = "1h"
    assert Settings.from_env(env).keep_alive == "1h"  # the environment wins
    env["MLXCTL_KEEP_ALIVE"] = ""
    assert Settings.from_env(env).keep_alive == "10m"  # empty is unset, as before


def test_sources_name_each_layer(tmp_path: Path) -> None:
    env = {**_home(tmp_path, "settings:\n  keep_alive: 10m\n"), "MLXCTL_MAX_QUEUE": "3"}
    found = sources(Settings, env, {"keep_alive": "10m"})
    assert (found["keep_alive"], found["max_queue"], found["memory_budget"]) == (
        "file",
        "env",
        "default",
    )


def test_mlxctl_config_points_elsewhere(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("settings:\n  blas: 'off'\n")
    env = {"MLXCTL_HOME": str(tmp_path / "home"), "MLXCTL_CONFIG": str(other)}
    assert Settings.from_env(env).blas == "off"


def test_a_bad_file_setting_names_its_line_and_a_bad_variable_its_name(tmp_path: Path) -> None:
    env = _home(tmp_path, "settings:\n  keep_alive: 10m\n  queue_timeout: later\n")
    with pytest.raises(ConfigError, match=r"config.yaml:3: settings.queue_timeout: "):
        Settings.from_env(env)
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(InvalidInput, match="MLXCTL_QUEUE_TIMEOUT='later'"):
        Settings.from_env({**env, "MLXCTL_QUEUE_TIMEOUT": "later"})
