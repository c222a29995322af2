"""One answer to "what can this model do", for /v1/models, /api/show and `mlxctl show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.capabilities import capabilities, chat_template, ollama_names
from mlxctl.factory import make_model
from mlxctl.registry import ModelRecord
from mlxctl.store.content.layout import StoreLayout

STORE = Path("/nonexistent/mlxctl-store")  # no override in these rows: never read


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("caps") / "qwen2", arch="qwen2", size="tiny")


def test_factory_qwen_has_chat_tools_reasoning(qwen: Path) -> None:
    record = ModelRecord(slug="q", cache_path=str(qwen))
    assert "<tool_call>" in chat_template(record, store_root=STORE)
    found = capabilities(record, store_root=STORE)
    assert found == ["completion", "chat", "tools", "reasoning", "structured_output"]
    assert ollama_names(found) == ["completion", "tools", "thinking"]


def test_registry_fields_and_override_count(tmp_path: Path) -> None:
    bare = ModelRecord(slug="b", cache_path=str(tmp_path))
    assert capabilities(bare, store_root=STORE) == ["completion", "structured_output"]
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    store = tmp_path / "store"
    parsed = ModelRecord(
        slug="p",
        cache_path=str(tmp_path),
        chat_template=str(StoreLayout(store).keep_template(template)),
        tool_call_parser="json_tools",
        reasoning_parser="think",
        format="gguf",
        extra={"command": "llama-server -m {model} --port {port}"},
    )
    # An external server's structured output is not ours to promise.
    assert capabilities(parsed, store_root=store) == ["completion", "chat", "tools", "reasoning"]


def test_a_bare_gguf_reads_its_embedded_template(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package is not installed")
    from mlxctl.factory.gguf import make_gguf

    file = make_gguf(tmp_path / "g", arch="qwen2", quant="Q4_0")
    assert not (file.parent / "tokenizer_config.json").exists()
    record = ModelRecord(
        slug="g", cache_path=str(file.parent), format="gguf", extra={"gguf_file": file.name}
    )
    assert "<tool_call>" in chat_template(record, store_root=STORE)
    assert capabilities(record, store_root=STORE) == [
        "completion",
        "chat",
        "tools",
        "reasoning",
        "structured_output",
    ]
