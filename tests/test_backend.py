"""One decision of which program serves a model, read by every part that needs it."""

from __future__ import annotations

from pathlib import Path

from mlxctl.backend import Backend, backend_of, backend_of_path, model_target
from mlxctl.capabilities import capabilities
from mlxctl.factory import make_model
from mlxctl.factory.embedding import make_embedding_model
from mlxctl.model_options import ModelOptions
from mlxctl.registry import ModelRecord
from mlxctl.supervision.command import child_argv


def row(**fields: object) -> ModelRecord:
    return ModelRecord(slug="m", cache_path="/models/m", **fields)  # type: ignore[arg-type]


def test_the_row_decides_the_backend() -> None:
    assert backend_of(row()) == Backend("mlx-lm")
    assert backend_of(row(format="gguf", extra={"gguf_file": "m.gguf"})).shared_kv
    encoder = backend_of(row(model_type="bert"))
    assert encoder.engine == "encoder" and encoder.embeds_only
    assert backend_of(row(extra={"architectures": ["BertModel"]})).engine == "encoder"
    command = backend_of(row(format="gguf", extra={"command": "llama-server -m {model}"}))
    assert (command.name, command.engine, command.external) == ("command", "llama.cpp", True)
    assert not command.enforces_schemas
    assert backend_of(row(extra={"command": "  "})).name == "mlx-lm"  # blank: no command


def test_every_reader_follows_it(tmp_path: Path) -> None:
    gguf = row(format="gguf", extra={"gguf_file": "m.gguf", "command": "srv {model} {port}"})
    assert model_target(gguf) == "/models/m/m.gguf"
    assert child_argv(gguf, ["mlxctl", "worker"], ModelOptions(), "h", 9) == [
        "srv",
        "/models/m/m.gguf",
        "9",
    ]
    plain = child_argv(row(), ["w"], ModelOptions(context=512), "h", 9)
    assert plain[:2] == ["w", "m"] and plain[plain.index("--context") + 1] == "512"
    assert "structured_output" not in capabilities(gguf, "", store_root=tmp_path)
    assert capabilities(row(model_type="bert"), "", store_root=tmp_path) == ["embeddings"]


def test_a_folder_served_by_path(tmp_path: Path) -> None:
    chat = make_model(tmp_path / "chat", arch="qwen2", size="tiny")
    assert backend_of_path(chat) == Backend("mlx-lm")
    bert = make_embedding_model(tmp_path / "bert")
    assert backend_of_path(bert) == Backend("encoder", kind="embedding")
