"""Pattern aliases: MLXCTL_MODEL_MAP's and config.yaml's, in order, first match wins; bad
pairs refused with a hint."""

from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.model_map import ModelMap, is_pattern


def test_the_first_matching_pattern_wins() -> None:
    mapping = ModelMap.parse(" claude-haiku-* = small , claude-*=big,*=default ")
    assert mapping.match("claude-haiku-4-5") == ("claude-haiku-*", ("small",))
    assert mapping.match("claude-opus-4-8") == ("claude-*", ("big",))
    assert mapping.match("gpt-5-codex") == ("*", ("default",))
    assert ModelMap.parse("").match("anything") is None


def test_config_pattern_aliases_come_after_the_environment() -> None:
    aliases = {"auto": ["a"], "gpt-*": ["b", "c"], "claude-*": ["d"]}
    mapping = ModelMap.parse("claude-*=e") + ModelMap.of_aliases(aliases)
    assert mapping.match("claude-opus") == ("claude-*", ("e",))
    assert mapping.match("gpt-5") == ("gpt-*", ("b", "c"))
    assert mapping.match("auto") is None  # a named alias is no pattern
    assert [is_pattern(n) for n in ("auto", "gpt-*", "q?", "[ab]x")] == [False, True, True, True]


@pytest.mark.parametrize("text", ["claude-*", "=q", "claude-*=", "a=b,c"])
def test_a_pair_without_pattern_or_model_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        ModelMap.parse(text)
    assert "pattern=model" in bad.value.message and bad.value.hint
