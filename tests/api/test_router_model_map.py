"""The router's last resort: MLXCTL_MODEL_MAP sends names nobody registered to a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from mlxctl.errors import NotFound
from mlxctl.model_map import ModelMap
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.router import Router, _sampled


def test_only_names_nobody_answers_to_are_mapped(
    isolated_home: Path, register: Callable[..., ModelRecord]
) -> None:
    register("qwen-small", size_bytes=1)
    register("claude-local", size_bytes=1)
    registry = open_registry()
    try:
        mapping = ModelMap.parse("claude-*=qwen-small,gpt-*=missing")
        router = Router(registry, cast(Any, None), cast(Any, None), model_map=mapping)
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


def test_a_null_preset_never_reaches_the_worker() -> None:
    # Found by the fuzz run: `"preset": null` went to the worker, which refused the field.
    body = json.dumps({"model": "m", "prompt": "hi", "preset": None}).encode()
    assert json.loads(_sampled(body, lambda preset: {})) == {"model": "m", "prompt": "hi"}
    plain = json.dumps({"model": "m", "prompt": "hi"}).encode()
    assert _sampled(plain, lambda preset: {}) == plain
