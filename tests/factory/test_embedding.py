"""The BERT encoder factory: HF file layout and names, determinism, the model's kind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors import safe_open
from tokenizers import Tokenizer

from mlxctl.factory.embedding import make_embedding_model
from mlxctl.store.local.kind import kind_of, model_kind
from mlxctl.store.local.modelinfo import inspect_model_dir


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_embedding_model(tmp_path_factory.mktemp("bert") / "tiny")


def test_writes_a_hf_bert_model(bert: Path) -> None:
    config = json.loads((bert / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    with safe_open(str(bert / "model.safetensors"), "numpy") as f:
        names = set(f.keys())
    assert "embeddings.word_embeddings.weight" in names
    assert "encoder.layer.1.attention.self.query.weight" in names
    assert "encoder.layer.0.output.LayerNorm.bias" in names and "pooler.dense.weight" in names
    tokenizer = Tokenizer.from_file(str(bert / "tokenizer.json"))
    ids = tokenizer.encode("Hello World").ids
    assert ids[0] == tokenizer.token_to_id("[CLS]") and ids[-1] == tokenizer.token_to_id("[SEP]")
    assert tokenizer.get_vocab_size() == config["vocab_size"]
    pooling = json.loads((bert / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True


def test_same_arguments_same_bytes(bert: Path, tmp_path: Path) -> None:
    again = make_embedding_model(tmp_path / "again")
    other = make_embedding_model(tmp_path / "other", seed=1)

    def digest(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert digest(again) == digest(bert) != digest(other)
    assert (again / "tokenizer.json").read_bytes() == (bert / "tokenizer.json").read_bytes()


def test_kind_and_registry_inspection(bert: Path, tmp_path: Path) -> None:
    assert model_kind(bert) == "embedding"
    assert model_kind(tmp_path) == "chat"  # no config.json
    assert kind_of("qwen2", ["Qwen2ForCausalLM"]) == "chat"
    assert kind_of(None, ["BertModel"]) == "embedding"
    info = inspect_model_dir(bert)
    assert info.model_type == "bert" and info.context_length == 128


def test_unknown_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        make_embedding_model(tmp_path, size="huge")
