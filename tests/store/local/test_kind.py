"""What a model folder is for (store/local/kind.py), as the registry records it and the
backend and capabilities read it."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlxctl.backend import backend_of, backend_of_path
from mlxctl.capabilities import capabilities
from mlxctl.factory.embedding import make_reranker_model
from mlxctl.factory.vision import make_vision_model
from mlxctl.store.local.kind import config_kind, kind_of, model_kind
from mlxctl.store.local.modelinfo import inspect_model_dir, read_safetensors_header, to_record


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    return {
        "rerank": make_reranker_model(root / "rerank"),
        "vision": make_vision_model(root / "vision"),
    }


def test_a_one_label_sequence_classifier_is_a_reranker(models: dict[str, Path]) -> None:
    assert model_kind(models["rerank"]) == "rerank"
    assert kind_of("bert", ["BertForSequenceClassification"]) == "rerank"
    assert kind_of("bert", ["BertModel"]) == "embedding"
    config = json.loads((models["rerank"] / "config.json").read_text())
    # Three labels (say, NLI) score no relevance: only its encoder is of use.
    three = config | {"id2label": {"0": "a", "1": "b", "2": "c"}}
    assert config_kind(three, has_processor=False) == "embedding"
    assert config_kind(config | {"num_labels": 1}, has_processor=False) == "rerank"


def test_a_vision_tower_image_token_and_processor_make_a_vision_model(
    models: dict[str, Path], tmp_path: Path
) -> None:
    assert model_kind(models["vision"]) == "vision"
    config = json.loads((models["vision"] / "config.json").read_text())
    assert config_kind(config, has_processor=False) == "chat"  # no image processor beside it
    del config["image_token_id"]
    assert config_kind(config, has_processor=True) == "chat"
    nested = {"vision_config": {}, "text_config": {"image_token_index": 5}, "model_type": "x"}
    assert config_kind(nested, has_processor=True) == "vision"
    # mlx-lm could serve the text half: the kind alone says images are welcome.
    bare = tmp_path / "bare"
    shutil.copytree(models["vision"], bare)
    (bare / "preprocessor_config.json").unlink()
    assert model_kind(bare) == "chat"


def test_the_registry_records_the_kind_and_the_backend_follows(models: dict[str, Path]) -> None:
    store = Path("/nonexistent-store")
    vision = to_record(inspect_model_dir(models["vision"]), slug="v")
    assert vision.extra["kind"] == "vision"
    assert backend_of(vision).engine == "mlx-vlm" == backend_of_path(models["vision"]).engine
    assert "vision" in capabilities(vision, store_root=store)
    # A row written before kinds were recorded: its model_type and architectures decide.
    old = replace(vision, extra={k: v for k, v in vision.extra.items() if k != "kind"})
    assert backend_of(old).engine == "mlx-lm"
    # The memory estimate starts from the weights: the vision tower's are counted too.
    tensors = read_safetensors_header(models["vision"] / "model.safetensors")
    tower = sum(math.prod(shape) for name, (_, shape) in tensors.items() if "vision" in name)
    assert tower > 0 and vision.parameters == sum(math.prod(s) for _, s in tensors.values())
    assert vision.size_bytes == (models["vision"] / "model.safetensors").stat().st_size
    rerank = to_record(inspect_model_dir(models["rerank"]), slug="r")
    assert backend_of(rerank).engine == "encoder" and backend_of(rerank).kind == "rerank"
    assert capabilities(rerank, store_root=store) == ["rerank"]
