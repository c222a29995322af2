"""The router's last resort: pattern aliases (MLXCTL_MODEL_MAP, then config.yaml's) send
names nobody registered to a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from mlxctl.config.file import parse_config
from mlxctl.config.live import LiveConfig
from mlxctl.errors import NotFound
from mlxctl.model_options import OptionsSource
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.router import Router, _sampled
from mlxctl.settings import Settings


def _router(registry: Any, model_map: str, config_text: str = "") -> Router:
    settings = Settings(model_map=model_map)
    config = parse_config(config_text, "config.yaml") if config_text else None
    options = OptionsSource.from_settings(settings, config)
    live = LiveConfig(settings, options, {}, config, Path("config.yaml"))
    return Router(registry, cast(Any, None), cast(Any, None), config=live)


def test_only_names_nobody_answers_to_are_mapped(
    isolated_home: Path, register: Callable[..., ModelRecord]
) -> None:
    register("qwen-small", size_bytes=1)
    register("claude-local", size_bytes=1)
    registry = open_registry()
    try:
        router = _router(registry, "claude-*=qwen-small,gpt-*=missing")
        assert router.resolve("claude-opus-4-8").slug == "qwen-small"
        # a registered name (and an unambiguous prefix of one) always means itself
        assert router.resolve("claude-local").slug == "claude-local"
        assert router.resolve("claude-lo").slug == "claude-local"
        # a map to a model that is not there is the usual NotFound, not a loop
        with pytest.raises(NotFound):
            router.resolve("gpt-5-codex")
        with pytest.raises(NotFound):
            router.resolve("llama")
    finally:
        registry.db.close()


def test_config_pattern_aliases_are_the_same_last_resort(
    isolated_home: Path, register: Callable[..., ModelRecord]
) -> None:
    register("qwen-small", size_bytes=1)
    register("qwen-big", size_bytes=1)
    registry = open_registry()
    try:
        text = "aliases:\n  'gpt-*': [missing, qwen-big]\n  'claude-*': [qwen-big]\n"
        router = _router(registry, "claude-haiku-*=qwen-small", text)
        assert router.resolve("claude-haiku-4-5").slug == "qwen-small"  # the environment's first
        assert router.resolve("claude-opus-4-8").slug == "qwen-big"
        assert router.resolve("gpt-5-codex").slug == "qwen-big"  # unregistered members skipped
        assert router.resolve("qwen-s").slug == "qwen-small"  # a prefix still means itself
        with pytest.raises(NotFound):
            router.resolve("claude-opus-4-8", mapped=True)
    finally:
        registry.db.close()


def test_a_null_preset_never_reaches_the_worker() -> None:
    # Found by the fuzz run: `"preset": null` went to the worker, which refused the field.
    body = json.dumps({"model": "m", "prompt": "hi", "preset": None}).encode()
    assert json.loads(_sampled(body, lambda preset: {})) == {"model": "m", "prompt": "hi"}
    plain = json.dumps({"model": "m", "prompt": "hi"}).encode()
    assert _sampled(plain, lambda preset: {}) == plain
