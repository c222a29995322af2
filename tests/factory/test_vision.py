"""The Qwen2.5-VL factory model: mlx-vlm loads it offline and answers an image."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx_vlm
import pytest
from mlx_vlm.prompt_utils import apply_chat_template
from PIL import Image

from mlxctl.factory.vision import VISION_SIZES, make_vision_model, max_image_tokens

FILES = {
    "chat_template.json",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "video_preprocessor_config.json",
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision")
    return {size: make_vision_model(root / size, size=size) for size in VISION_SIZES}


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Not square and not a multiple of 28: the processor has to resize it.
    path = tmp_path_factory.mktemp("images") / "gradient.png"
    pixels = bytes((x * 7 + y * 3) % 256 for y in range(90) for x in range(150) for _ in range(3))
    Image.frombytes("RGB", (150, 90), pixels).save(path)
    return path


def _config(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "config.json").read_text()))


@pytest.mark.parametrize("size", list(VISION_SIZES))
def test_mlx_vlm_loads_it_and_answers_an_image(
    made: dict[str, Path], picture: Path, size: str
) -> None:
    path = made[size]
    assert {p.name for p in path.iterdir()} == FILES
    model, processor = mlx_vlm.load(str(path))
    prompt = apply_chat_template(processor, model.config, "What is in the picture?", num_images=1)
    assert "<|vision_start|><|image_pad|><|vision_end|>What is in the picture?" in prompt
    result = mlx_vlm.generate(
        model, processor, prompt, image=[str(picture)], max_tokens=5, temperature=0.0
    )
    assert result.generation_tokens == 5
    vocab = _config(path)["vocab_size"]
    assert all(0 <= t < vocab for t in result.token_ids)
    # The image's tokens are in the prompt: far more than the text alone.
    text_only = len(processor.tokenizer.encode(prompt))
    assert result.prompt_tokens > text_only


def test_processor_expands_each_image_to_its_patch_count(
    made: dict[str, Path], picture: Path
) -> None:
    path = made["tiny"]
    config = _config(path)
    model, processor = mlx_vlm.load(str(path))
    prompt = apply_chat_template(processor, model.config, "Compare them.", num_images=2)
    image = Image.open(picture)
    inputs = processor(text=[prompt], images=[image, image.resize((40, 40))], padding=True)
    ids = inputs["input_ids"][0].tolist()
    grid = inputs["image_grid_thw"].tolist()
    per_image = [t * h * w // 4 for t, h, w in grid]
    assert ids.count(config["image_token_id"]) == sum(per_image)
    assert ids.count(config["vision_start_token_id"]) == 2
    assert all(0 < n <= max_image_tokens("tiny") for n in per_image)
    assert max_image_tokens("tiny") == 16 and max_image_tokens("small") == 64
    # The vision tower maps the patches to one text-width vector per image token.
    pixels = inputs["pixel_values"]
    features = model.vision_tower(pixels, inputs["image_grid_thw"], output_hidden_states=False)
    assert features.shape == (sum(per_image), config["hidden_size"])
    assert bool(mx.all(mx.isfinite(features)))


def test_config_identifies_a_vision_model(made: dict[str, Path]) -> None:
    config = _config(made["tiny"])
    assert config["model_type"] == "qwen2_5_vl"
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert config["vision_config"]["out_hidden_size"] == config["hidden_size"]
    tokenizer = json.loads((made["tiny"] / "tokenizer_config.json").read_text())
    added = {v["content"]: int(k) for k, v in tokenizer["added_tokens_decoder"].items()}
    assert added["<|image_pad|>"] == config["image_token_id"]
    assert added["<|video_pad|>"] == config["video_token_id"]
    preprocessor = json.loads((made["tiny"] / "preprocessor_config.json").read_text())
    assert preprocessor["processor_class"] == "Qwen2_5_VLProcessor"
    template = json.loads((made["tiny"] / "chat_template.json").read_text())["chat_template"]
    assert template == tokenizer["chat_template"]


def test_same_arguments_same_bytes(made: dict[str, Path], tmp_path: Path) -> None:
    again = make_vision_model(tmp_path / "again")
    other = make_vision_model(tmp_path / "other", seed=1)

    def digest(folder: Path, name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    for name in FILES:
        assert digest(again, name) == digest(made["tiny"], name), name
    assert digest(other, "model.safetensors") != digest(again, "model.safetensors")


@pytest.mark.parametrize("options", [{"size": "huge"}, {"arch": "llava"}])
def test_bad_arguments_are_refused(tmp_path: Path, options: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        make_vision_model(tmp_path, **options)
