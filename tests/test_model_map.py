"""MLXCTL_MODEL_MAP: patterns in order, first match wins; bad pairs refused with a hint."""

from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.model_map import ModelMap


def test_the_first_matching_pattern_wins() -> None:
    mapping = ModelMap.parse(" claude-haiku-* = small , claude-*=big,*=default ")
    assert mapping.target("claude-haiku-4-5") == "small"
    assert mapping.target("claude-opus-4-8") == "big"
    assert mapping.target("gpt-5-codex") == "default"
    assert ModelMap.parse("").target("anything") is None


@pytest.mark.parametrize("text", ["claude-*", "=q", "claude-*=", "a=b,c"])
def test_a_pair_without_pattern_or_model_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        ModelMap.parse(text)
    assert "pattern=model" in bad.value.message and bad.value.hint
