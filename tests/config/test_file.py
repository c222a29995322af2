"""config.yaml read and validated: errors name the line and the field; nothing is guessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.config.file import parse_config, read_config
from mlxctl.config.source import ConfigError


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml")
    return caught.value


def test_an_empty_or_missing_file_is_no_config(tmp_path: Path) -> None:
    assert read_config(tmp_path / "absent.yaml") is None
    empty = parse_config("", "cfg.yaml")
    assert (empty.models, empty.aliases, empty.presets, empty.settings) == ({}, {}, {}, {})


def test_an_unknown_model_field_names_its_line_and_field() -> None:
    error = _error("models:\n  qwen:\n    context: 4096\n    max_bacth: 2\n")
    assert error.field == "models.qwen.max_bacth"
    assert error.message.startswith("cfg.yaml:4: models.qwen.max_bacth:")
    assert "not permitted" in error.message


def test_a_value_out_of_range_names_its_line() -> None:
    error = _error("presets:\n  fast:\n    max_batch: 0\n")
    assert error.message.startswith("cfg.yaml:3: presets.fast.max_batch:")
    assert "greater than or equal to 1" in error.message
    sampling = _error("models:\n  q:\n    sampling:\n      temperature: 9\n")
    assert sampling.message.startswith("cfg.yaml:4: models.q.sampling.temperature:")


def test_bad_yaml_names_its_line() -> None:
    error = _error("aliases:\n  auto: [a, b\nmodels: {}\n")
    assert error.message.startswith("cfg.yaml:3: not valid YAML")


def test_a_missing_preset_and_an_empty_alias_are_refused() -> None:
    missing = _error("models:\n  q:\n    preset: quick\n")
    assert "no preset named 'quick'" in missing.message
    empty = _error("aliases:\n  auto: []\n")
    assert empty.message.startswith("cfg.yaml:2: aliases.auto:") or "aliases" in empty.message


def test_bad_sizes_and_durations_are_refused() -> None:
    assert "prompt_cache_bytes" in _error("models:\n  q:\n    prompt_cache_bytes: lots\n").message
    keep = _error("models:\n  q:\n    keep_alive: soon\n")
    assert keep.message.startswith("cfg.yaml:3: models.q.keep_alive:")


def test_settings_are_checked_by_the_settings_rules() -> None:
    unknown = _error("settings:\n  keep_alive: 5m\n  budget: 3\n")
    assert unknown.message == "cfg.yaml:3: settings.budget: is not a setting"
    typed = _error("settings:\n  max_loaded_models: many\n")
    assert typed.message.startswith("cfg.yaml:2: settings.max_loaded_models:")
    home = _error("settings:\n  home: /elsewhere\n")
    assert "environment only" in home.message
