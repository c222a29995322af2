"""Parser names as the seeds, vLLM and mlx-openai-server write them, through the one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl import parsers
from mlxctl.errors import InvalidInput
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.exchange import parse_registry
from mlxctl.slots.verify import audit_drift, needs


@pytest.mark.parametrize(
    ("name", "tool", "reasoning"),
    [
        ("harmony", "harmony", "harmony"),  # seed 001 for gpt-oss
        ("gpt_oss", "harmony", "harmony"),
        ("gpt-oss", "harmony", "harmony"),
        ("openai", "harmony", "harmony"),  # vLLM's gpt-oss tool parser
        ("qwen3_moe", "json_tools", "think"),  # seed 001's example
        ("Qwen3", "json_tools", "think"),
        ("hermes", "json_tools", "think"),
        ("qwen3-coder", "qwen3_coder", None),
        ("glm4_moe", "glm47", "think"),
        ("json_tools", "json_tools", None),  # mlx-lm's own module names
        ("kimi_k3", "kimi_k3", None),
        ("deepseek_r1", None, "think"),
        ("openai_gptoss", None, "harmony"),
        ("none", None, "none"),
    ],
)
def test_names_users_write_resolve(name: str, tool: str | None, reasoning: str | None) -> None:
    if tool is None:
        with pytest.raises(InvalidInput):
            parsers.tool_parser(name)
    else:
        assert parsers.tool_parser(name) == tool
    if reasoning is None:
        with pytest.raises(InvalidInput):
            parsers.reasoning_parser(name)
    else:
        assert parsers.reasoning_parser(name) == reasoning


def test_every_tool_target_is_a_parser_that_exists() -> None:
    shipped = set(parsers.mlxlm_tool_parsers())
    assert {"json_tools", "qwen3_coder", "pythonic"} <= shipped
    targets = {tool for tool, _ in parsers.NAMES.values() if tool}
    assert targets - shipped == {"harmony"}
    assert {r for _, r in parsers.NAMES.values() if r} == set(parsers.REASONING)


def test_an_unknown_name_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        parsers.tool_parser("no_such_parser")
    assert "harmony" in str(info.value.hint) and "qwen3_moe" in str(info.value.hint)
    with pytest.raises(InvalidInput) as info:
        parsers.reasoning_parser("qwen3_coder")  # a tool parser only
    assert "deepseek_r1" in str(info.value.hint)


def test_the_registry_refuses_unknown_names_and_keeps_what_was_written(
    registry: Registry, tmp_path: Path
) -> None:
    record = registry.add(
        ModelRecord(slug="m", cache_path=str(tmp_path), tool_call_parser="qwen3_moe")
    )
    assert record.tool_call_parser == "qwen3_moe"  # stored as written, resolved when run
    with pytest.raises(InvalidInput) as info:
        registry.update("m", reasoning_parser="qwen9")
    assert "reasoning_parser: unknown reasoning parser 'qwen9'" in info.value.message
    assert registry.get("m") == record
    bad = '{"version": 1, "models": {"x": {"cache_path": "/x", "tool_call_parser": "nope"}}}'
    with pytest.raises(InvalidInput) as info:
        parse_registry(bad, source="r.json")
    assert info.value.message.startswith("r.json:1: models.x: model 'x': tool_call_parser")


def _gpt_oss(tmp_path: Path, **fields: str | None) -> ModelRecord:
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    return ModelRecord(slug="g", cache_path=str(tmp_path), model_type="gpt_oss", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["harmony", "gpt-oss", "openai"])
def test_verify_accepts_every_harmony_spelling(tmp_path: Path, name: str) -> None:
    record = _gpt_oss(tmp_path, tool_call_parser=name, reasoning_parser=name)
    assert needs(record) == []
    audit = {"tool_call_parser": "harmony", "reasoning_parser": "harmony"}
    assert audit_drift(record, audit) == []


def test_verify_flags_a_missing_or_wrong_harmony_parser(tmp_path: Path) -> None:
    problems = needs(_gpt_oss(tmp_path, tool_call_parser="json_tools"))
    assert any("tool_call_parser=harmony (has json_tools)" in p for p in problems)
    assert any("reasoning_parser=harmony (has none)" in p for p in problems)
    drift = audit_drift(
        _gpt_oss(tmp_path, tool_call_parser="hermes"), {"tool_call_parser": "harmony"}
    )
    assert drift == ["tool_call_parser: worker uses harmony, the registry says hermes"]
