"""make_model: every architecture and size loads and generates through mlx-lm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from mlx.nn.layers.base import Module
from mlx.nn.layers.quantized import QuantizedLinear

from mlxctl.engine import mlxlm
from mlxctl.factory import ARCHS, SIZES, make_model, model_config
from tests.factory.conftest import Built

FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
}
END_OF_TURN = {"qwen2": "<|im_end|>", "llama": "<|eot_id|>", "gpt_oss": "<|return|>"}
PLAIN_KV_ARCHS = ("llama", "qwen2", "gpt_oss")  # the rest: test_cachearchs.py


def _config(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "config.json").read_text()))


def _generate(path: Path, max_tokens: int = 6) -> tuple[list[int], Module]:
    model, tokenizer = mlxlm.load(path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say something."}], add_generation_prompt=True
    )
    tokens = [r.token for r in mlxlm.stream_generate(model, tokenizer, prompt, max_tokens)]
    return tokens, model


@pytest.mark.parametrize("size", ["tiny", "small"])
@pytest.mark.parametrize("arch", ARCHS)
def test_loads_and_generates(built: Built, arch: str, size: str) -> None:
    path = built(arch, size)
    assert {p.name for p in path.iterdir()} == FILES
    tokens, model = _generate(path)
    assert len(tokens) > 0
    assert all(0 <= t < _config(path)["vocab_size"] for t in tokens)
    params = mlxlm.total_parameters(model)
    if size == "tiny":
        assert params < 1_000_000
    else:
        assert 20_000_000 <= params <= 60_000_000


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_are_spread_out(built: Built, arch: str) -> None:
    model, tokenizer = mlxlm.load(built(arch))
    logits = model(mx.array([tokenizer.encode("The quick brown fox")]))[0, -1]
    assert bool(mx.all(mx.isfinite(logits)))
    # Unit-scale init: neither a flat distribution nor an overflowing one.
    assert 0.3 < float(mx.std(logits)) < 5.0


@pytest.mark.parametrize("arch", PLAIN_KV_ARCHS)
def test_config_carries_what_loaders_read(built: Built, arch: str) -> None:
    path = built(arch)
    config = _config(path)
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    added = {v["content"]: int(k) for k, v in tokenizer_config["added_tokens_decoder"].items()}
    eot = added[END_OF_TURN[arch]]

    assert config["model_type"] == arch
    assert config["architectures"] == [
        {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM", "gpt_oss": "GptOssForCausalLM"}[
            arch
        ]
    ]
    assert config["torch_dtype"] == "float32"
    assert config["max_position_embeddings"] == 4096
    assert config["num_key_value_heads"] == 2
    assert max(added.values()) < config["vocab_size"]
    eos = config["eos_token_id"]
    assert eot == eos or eot in eos
    generation = json.loads((path / "generation_config.json").read_text())
    assert generation["eos_token_id"][0] == eot
    if arch == "llama":
        assert config["head_dim"] == config["hidden_size"] // config["num_attention_heads"]
        assert config["bos_token_id"] == added["<|begin_of_text|>"]
        assert config["tie_word_embeddings"] is False
    elif arch == "gpt_oss":
        assert config["bos_token_id"] == added["<|startoftext|>"]
        assert eos == [added["<|return|>"], added["<|call|>"], added["<|endoftext|>"]]
        assert config["num_local_experts"] > config["num_experts_per_tok"] > 1
        assert config["layer_types"] == ["sliding_attention", "full_attention"]
    else:
        assert config["bos_token_id"] == added["<|endoftext|>"]
        assert config["tie_word_embeddings"] is True


def test_small_has_room_for_long_prompts(built: Built) -> None:
    assert _config(built("qwen2", "small"))["max_position_embeddings"] == 8192


@pytest.mark.parametrize(("arch", "bits"), [("qwen2", 4), ("llama", 4), ("llama", 8)])
def test_quantized_model_loads_and_generates(built: Built, arch: str, bits: int) -> None:
    path = built(arch, quantize_bits=bits)
    config = _config(path)
    expected = {"group_size": 64, "bits": bits, "mode": "affine"}
    assert config["quantization"] == config["quantization_config"] == expected
    tokens, model = _generate(path, max_tokens=4)
    assert tokens
    layers = [m for _, m in model.named_modules() if isinstance(m, QuantizedLinear)]
    assert layers and all(m.bits == bits for m in layers)


def test_same_seed_gives_identical_bytes(built: Built, tmp_path: Path) -> None:
    first = built("qwen2")
    again = make_model(tmp_path / "again", arch="qwen2", size="tiny", seed=0)
    for name in sorted(FILES):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_other_seed_changes_only_weights(built: Built, tmp_path: Path) -> None:
    first = built("llama")
    other = make_model(tmp_path / "other", arch="llama", seed=1)
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()
    assert (first / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype_is_honoured(built: Built, dtype: str) -> None:
    path = built("llama", dtype=dtype)
    assert _config(path)["torch_dtype"] == dtype
    weights = mx.load(str(path / "model.safetensors"))
    assert isinstance(weights, dict)
    assert {str(w.dtype) for w in weights.values()} == {f"mlx.core.{dtype}"}
    tokens, _ = _generate(path, max_tokens=3)
    assert tokens


def test_remaking_into_a_directory_replaces_weights(tmp_path: Path) -> None:
    make_model(tmp_path, arch="qwen2", quantize_bits=4)
    make_model(tmp_path, arch="qwen2")
    assert "quantization" not in _config(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("model*")) == [
        "model.safetensors",
        "model.safetensors.index.json",
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"arch": "gpt2"},
        {"size": "7b"},
        {"arch": "qwen3_5", "size": "0.5b"},
        {"dtype": "int8"},
        {"quantize_bits": 3},
        {"quantize_bits": 4, "group_size": 48},
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_model(tmp_path, **options)


def test_sizes_are_the_public_ones() -> None:
    assert SIZES == ("tiny", "small", "0.5b")
    assert ARCHS == ("llama", "qwen2", "gpt_oss", "qwen3_5", "gemma3_text")


def _count(config: dict[str, Any]) -> int:
    # Building without evaluating allocates nothing: shapes are enough to count.
    model_cls, args_cls = mlxlm.model_classes(config)
    return mlxlm.total_parameters(model_cls(args_cls.from_dict(config)))


def test_qwen2_half_billion_is_the_real_shape() -> None:
    config = model_config("qwen2", "0.5b")
    shape = {k: config[k] for k in REAL_QWEN2_5_0_5B}
    assert shape == REAL_QWEN2_5_0_5B
    assert _count(config) == 494_032_768


def test_llama_half_billion_is_comparable() -> None:
    config = model_config("llama", "0.5b")
    assert 450_000_000 < _count(config) < 550_000_000
    assert config["vocab_size"] == 128256
    assert config["head_dim"] * config["num_attention_heads"] == config["hidden_size"]


REAL_QWEN2_5_0_5B = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 32768,
}


@pytest.mark.slow
def test_qwen2_half_billion_builds_loads_and_generates(tmp_path: Path) -> None:
    path = make_model(tmp_path, arch="qwen2", size="0.5b", dtype="bfloat16")
    assert 0.9e9 < (path / "model.safetensors").stat().st_size < 1.1e9
    model, tokenizer = mlxlm.load(path)
    assert mlxlm.total_parameters(model) == 494_032_768
    tokens = [r.token for r in mlxlm.stream_generate(model, tokenizer, "Hello", max_tokens=3)]
    assert len(tokens) == 3
