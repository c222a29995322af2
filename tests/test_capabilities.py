"""One answer to "what can this model do", for /v1/models, /api/show and `mlxctl show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.capabilities import capabilities, chat_template, ollama_names
from mlxctl.factory import make_model
from mlxctl.registry import ModelRecord


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("caps") / "qwen2", arch="qwen2", size="tiny")


def test_factory_qwen_has_chat_tools_reasoning(qwen: Path) -> None:
    record = ModelRecord(slug="q", cache_path=str(qwen))
    assert "<tool_call>" in chat_template(record)
    found = capabilities(record)
    assert found == ["completion", "chat", "tools", "reasoning", "structured_output"]
    assert ollama_names(found) == ["completion", "tools", "thinking"]


def test_registry_fields_and_override_count(tmp_path: Path) -> None:
    bare = ModelRecord(slug="b", cache_path=str(tmp_path))
    assert capabilities(bare) == ["completion", "structured_output"]
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    parsed = ModelRecord(
        slug="p",
        cache_path=str(tmp_path),
        chat_template=str(template),
        tool_call_parser="json_tools",
        reasoning_parser="think",
        format="gguf",
    )
    assert capabilities(parsed) == ["completion", "chat", "tools", "reasoning"]
