"""Random-weight Qwen2.5-VL vision-language models for mlx-vlm.

`make_vision_model` writes what an mlx-community Qwen2.5-VL conversion holds: config.json
(text keys at the top, `vision_config` beside them, the vision token ids), MLX-named
safetensors, a chatml tokenizer with Qwen's vision tokens, and the processor files mlx-vlm
reads: preprocessor_config.json, video_preprocessor_config.json and chat_template.json.
mlx-vlm's own numpy processor handles Qwen2.5-VL, so nothing needs torch or the network.

An image becomes ceil(h/28)·ceil(w/28) `<|image_pad|>` tokens (14-pixel patches merged
2×2), bounded by `max_pixels`: at most 16 (tiny) or 64 (small) per image.

mlx-vlm is imported here directly (it is an optional extra, `mlxctl[vision]`); the vision
engine should bring it behind its own door in `engine/`. Same arguments, same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mlx.nn.layers.base import Module

from mlxctl.engine import mlxlm
from mlxctl.factory.model import DTYPES, randomize
from mlxctl.factory.tokenizer import tokenizer_info, write_tokenizer

__all__ = ["VISION_ARCHS", "VISION_SIZES", "make_vision_model", "vision_config"]

VISION_ARCHS = ("qwen2_5_vl",)
_FAMILY = "chatml-vision"
_PATCH = 14
_MERGE = 2
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class _Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    bpe_vocab: int
    max_side: int  # longest image side (pixels) before the processor scales it down


VISION_SIZES: dict[str, _Shape] = {
    "tiny": _Shape(64, 2, 4, 2, 256, (2, 3, 3), 32, 2, 2, 64, 2048, 112),
    "small": _Shape(512, 8, 8, 2, 2048, (8, 12, 12), 128, 4, 4, 512, 8192, 224),
}


def vision_config(size: str = "tiny") -> dict[str, Any]:
    """The config.json of a factory vision model (text keys at the top, as Qwen2.5-VL's)."""
    shape = _shape(size)
    tokens = tokenizer_info(_FAMILY, shape.bpe_vocab)
    ids = tokens.special_ids
    # Window attention in every block but the last, as Qwen2.5-VL's 3 of every 4.
    vision = {
        "depth": shape.vision_depth,
        "fullatt_block_indexes": [shape.vision_depth - 1],
        "hidden_act": "silu",
        "hidden_size": shape.vision_hidden,
        "in_chans": 3,
        "intermediate_size": shape.vision_intermediate,
        "model_type": "qwen2_5_vl",
        "num_heads": shape.vision_heads,
        "out_hidden_size": shape.hidden,
        "patch_size": _PATCH,
        "spatial_merge_size": _MERGE,
        "spatial_patch_size": _PATCH,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
    }
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": tokens.pad_token_id,
        "eos_token_id": tokens.eos_token_id,
        "hidden_act": "silu",
        "hidden_size": shape.hidden,
        "image_token_id": ids["<|image_pad|>"],
        "initializer_range": 0.02,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": 8192,
        "max_window_layers": shape.layers,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": {"mrope_section": list(shape.mrope_section), "type": "mrope"},
        "rope_theta": 1000000.0,
        "sliding_window": 8192,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "video_token_id": ids["<|video_pad|>"],
        "vision_config": vision,
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "vocab_size": tokens.size,
    }


def make_vision_model(
    out_dir: Path, *, arch: str = "qwen2_5_vl", size: str = "tiny", seed: int = 0
) -> Path:
    """Write a random-weight vision-language model that `mlx_vlm.load` loads; return it."""
    if arch not in VISION_ARCHS:
        raise ValueError(f"Unknown vision architecture {arch!r}; choose {', '.join(VISION_ARCHS)}")
    shape = _shape(size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = write_tokenizer(
        out_dir, family=_FAMILY, vocab_size=shape.bpe_vocab, model_max_length=8192
    )
    config = vision_config(size)
    model = _build(config)
    randomize(model, seed=seed, dtype=DTYPES[config["torch_dtype"]], used_vocab=tokens.size)
    for stale in out_dir.glob("model*.safetensors*"):
        stale.unlink()
    mlxlm.save_weights(out_dir, model)
    # Not mlx-lm's save_config: it drops `vision_config` unless told otherwise.
    _write_json(out_dir / "config.json", dict(sorted(config.items())))

    template = json.loads((out_dir / "tokenizer_config.json").read_text())["chat_template"]
    _write_json(out_dir / "chat_template.json", {"chat_template": template})
    pixels = _image_processor(shape)
    _write_json(out_dir / "preprocessor_config.json", pixels)
    _write_json(
        out_dir / "video_preprocessor_config.json",
        pixels | {"video_processor_type": "Qwen2VLVideoProcessor", "fps": 2.0},
    )
    generation = {
        "bos_token_id": config["bos_token_id"],
        "do_sample": True,
        "eos_token_id": list(tokens.eos_token_ids),
        "pad_token_id": tokens.pad_token_id,
        "repetition_penalty": 1.05,
        "temperature": 0.1,
        "top_k": 1,
        "top_p": 0.001,
    }
    _write_json(out_dir / "generation_config.json", generation)
    return out_dir


def max_image_tokens(size: str) -> int:
    """The most `<|image_pad|>` tokens one image can become in a model of `size`."""
    side = _shape(size).max_side // (_PATCH * _MERGE)
    return side * side


def _image_processor(shape: _Shape) -> dict[str, Any]:
    min_pixels = (_PATCH * _MERGE) ** 2 * 4
    max_pixels = shape.max_side * shape.max_side
    return {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": _CLIP_MEAN,
        "image_processor_type": "Qwen2VLImageProcessor",
        "image_std": _CLIP_STD,
        "max_pixels": max_pixels,
        "merge_size": _MERGE,
        "min_pixels": min_pixels,
        "patch_size": _PATCH,
        "processor_class": "Qwen2_5_VLProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"longest_edge": max_pixels, "shortest_edge": min_pixels},
        "temporal_patch_size": 2,
    }


def _build(config: dict[str, Any]) -> Module:
    # The steps of mlx_vlm.utils.load_model that turn a config into a model, minus weights.
    import mlx_vlm.utils

    # Typed Any: most of mlx-vlm carries no annotations.
    utils: Any = mlx_vlm.utils
    config = json.loads(json.dumps(config))  # mlx-vlm edits the dict it is given
    model_class, _ = utils.get_model_and_args(config=config)
    config.setdefault("text_config", {})
    config.setdefault("audio_config", {})
    model_config = model_class.ModelConfig.from_dict(config)
    modules = ["text", "vision"]
    model_config = utils.update_module_configs(model_config, model_class, config, modules)
    return cast(Module, model_class.Model(model_config))


def _shape(size: str) -> _Shape:
    if size not in VISION_SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {', '.join(VISION_SIZES)}")
    return VISION_SIZES[size]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
