from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest

from mlxctl.errors import InvalidInput
from mlxctl.store.local.modelinfo import (
    GGUF_UNSUPPORTED,
    inspect_model_dir,
    read_safetensors_header,
    to_record,
)
from tests.store.store_helpers import (
    HEAD_DIM,
    KV_HEADS,
    LAYERS,
    PARAMETERS,
    llama_config,
    llama_weights,
    quantize_weights,
    write_model,
)


def test_fp32_model_is_described_from_headers(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m")
    info = inspect_model_dir(path)
    assert info.format == "mlx" and info.supported
    assert info.model_type == "llama"
    assert info.architectures == ("LlamaForCausalLM",)
    assert info.parameters == PARAMETERS == 90_432
    assert info.size_bytes == (path / "model.safetensors").stat().st_size
    assert info.quant_bits is None and info.quant_group_size is None
    assert info.dtype == "float32"
    assert info.context_length == 2048
    assert info.has_chat_template is False


def test_kv_bytes_per_token_matches_hand_computation(tmp_path: Path) -> None:
    info = inspect_model_dir(write_model(tmp_path / "m"))
    # K and V × 2 layers × 2 KV heads × head_dim 16 × 4 bytes (float32).
    assert info.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4 == 512
    assert 2 * LAYERS * KV_HEADS * HEAD_DIM * 4 == 512


def test_four_bit_model_counts_unpacked_weights_and_skips_scales(tmp_path: Path) -> None:
    weights = quantize_weights(llama_weights(), bits=4, group_size=64, scales=mx.float16)
    config = llama_config(quantization={"group_size": 64, "bits": 4})
    path = write_model(tmp_path / "q4", config=config, weights=weights)
    info = inspect_model_dir(path)
    assert info.parameters == PARAMETERS
    assert (info.quant_bits, info.quant_group_size) == (4, 64)
    # The norms stay float32, but quantized matmuls run in the scales' float16.
    assert info.dtype == "float16"
    assert info.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    fp32 = inspect_model_dir(write_model(tmp_path / "fp32"))
    assert info.size_bytes < fp32.size_bytes / 4


def test_per_layer_bits_and_bits_inferred_without_config(tmp_path: Path) -> None:
    weights = quantize_weights(llama_weights(), bits=4, scales=mx.bfloat16)
    head = mx.random.normal((128, 64)).astype(mx.bfloat16)
    q, s, b = mx.quantize(head, group_size=64, bits=8)
    weights.update({"lm_head.weight": q, "lm_head.scales": s, "lm_head.biases": b})
    quant = {"group_size": 64, "bits": 4, "lm_head": {"group_size": 64, "bits": 8}}
    mixed = write_model(
        tmp_path / "mixed", config=llama_config(quantization=quant), weights=weights
    )
    assert inspect_model_dir(mixed).parameters == PARAMETERS

    bare = write_model(
        tmp_path / "bare", config=llama_config(), weights=quantize_weights(llama_weights())
    )
    info = inspect_model_dir(bare)
    assert info.parameters == PARAMETERS
    assert info.quant_bits == 4


def test_quantization_config_key_is_read(tmp_path: Path) -> None:
    weights = quantize_weights(llama_weights(), bits=8, group_size=32)
    config = llama_config(quantization_config={"group_size": 32, "bits": 8})
    info = inspect_model_dir(write_model(tmp_path / "m", config=config, weights=weights))
    assert (info.quant_bits, info.quant_group_size) == (8, 32)
    assert info.parameters == PARAMETERS


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, 2048),
        ({"max_position_embeddings": None, "text_config": {"max_position_embeddings": 4096}}, 4096),
        ({"max_position_embeddings": None, "max_seq_len": 1024}, 1024),
        ({"max_position_embeddings": None, "n_positions": 512}, 512),
        ({"max_position_embeddings": None, "seq_length": 8192}, 8192),
        ({"max_position_embeddings": None}, None),
    ],
)
def test_context_length_fallbacks(
    tmp_path: Path, overrides: dict[str, Any], expected: int | None
) -> None:
    info = inspect_model_dir(write_model(tmp_path / "m", config=llama_config(**overrides)))
    assert info.context_length == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # An explicit head_dim wins over hidden_size / heads.
        ({"head_dim": 32}, 2 * 2 * 2 * 32 * 4),
        # KV heads default to the attention heads.
        ({"num_key_value_heads": None}, 2 * 2 * 4 * 16 * 4),
        # Fields nested in text_config (VLM configs) are found too.
        (
            {
                "num_hidden_layers": None,
                "num_attention_heads": None,
                "num_key_value_heads": None,
                "hidden_size": None,
                "text_config": {
                    "num_hidden_layers": 3,
                    "num_attention_heads": 8,
                    "hidden_size": 64,
                },
            },
            2 * 3 * 8 * 8 * 4,
        ),
        ({"num_hidden_layers": None}, None),
    ],
)
def test_kv_bytes_per_token_config_variants(
    tmp_path: Path, overrides: dict[str, Any], expected: int | None
) -> None:
    info = inspect_model_dir(write_model(tmp_path / "m", config=llama_config(**overrides)))
    assert info.kv_bytes_per_token == expected


def test_weight_dtype_beats_config_dtype(tmp_path: Path) -> None:
    # mlx-lm computes in the dtype the weights are stored in, whatever torch_dtype says.
    config = llama_config(torch_dtype="float32")
    path = write_model(tmp_path / "m", config=config, weights=llama_weights(mx.bfloat16))
    info = inspect_model_dir(path)
    assert info.dtype == "bfloat16"
    assert info.kv_bytes_per_token == 256


def test_config_dtype_used_when_weights_have_no_float(tmp_path: Path) -> None:
    weights = {"model.embed_tokens.weight": mx.zeros((4, 4), dtype=mx.int8)}
    config = llama_config(torch_dtype="torch.bfloat16")
    info = inspect_model_dir(write_model(tmp_path / "m", config=config, weights=weights))
    assert info.dtype == "bfloat16"
    assert info.parameters == 16


@pytest.mark.parametrize("how", ["tokenizer_config", "chat_template.jinja", "chat_template.json"])
def test_chat_template_detection(tmp_path: Path, how: str) -> None:
    path = write_model(tmp_path / "m", chat_template=how == "tokenizer_config")
    if how != "tokenizer_config":
        (path / how).write_text("{{ messages }}")
    assert inspect_model_dir(path).has_chat_template


def test_sharded_model_sums_shards(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m", shards=3)
    info = inspect_model_dir(path)
    assert info.parameters == PARAMETERS
    assert info.size_bytes == sum(p.stat().st_size for p in path.glob("model-*.safetensors"))


def test_missing_shard_is_an_incomplete_download(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m", shards=2)
    (path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InvalidInput, match=r"incomplete download.*model-00002-of-00002"):
        inspect_model_dir(path)


def _truncate(path: Path) -> None:
    (path / "model.safetensors").write_bytes(b"\x01\x02")


def _garbage_header(path: Path) -> None:
    body = b"{not json"
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(body)) + body)


def _huge_header(path: Path) -> None:
    (path / "model.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")


def _bad_entry(path: Path) -> None:
    body = json.dumps({"x": {"dtype": "F32", "shape": [-1]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(body)) + body)


def _broken_link(path: Path) -> None:
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").symlink_to(path / "gone.safetensors")


def _no_model_type(path: Path) -> None:
    (path / "config.json").write_text(json.dumps(llama_config(model_type=None)))


def _pytorch_only(path: Path) -> None:
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(b"\0" * 16)


def _other_safetensors(path: Path) -> None:
    (path / "model.safetensors").rename(path / "consolidated.safetensors")


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (lambda p: (p / "config.json").unlink(), "no config.json"),
        (lambda p: (p / "config.json").write_text("{oops"), "not valid JSON"),
        (lambda p: (p / "config.json").write_text("[1, 2]"), "not a JSON object"),
        (_no_model_type, "no model_type"),
        (lambda p: (p / "model.safetensors").unlink(), r"no weight files \(model\*.safetensors\)"),
        (_pytorch_only, "PyTorch weights only"),
        (_other_safetensors, r"found consolidated.safetensors"),
        (_truncate, "shorter than 8 bytes"),
        (_garbage_header, "header is not JSON"),
        (_huge_header, "exceeds the file"),
        (_bad_entry, "invalid shape"),
        (_broken_link, "missing or broken link"),
    ],
)
def test_broken_dirs_name_the_reason(tmp_path: Path, breakage: Any, reason: str) -> None:
    path = write_model(tmp_path / "m")
    breakage(path)
    with pytest.raises(InvalidInput, match=reason):
        inspect_model_dir(path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a folder"):
        inspect_model_dir(tmp_path / "nope")


def test_pytorch_error_carries_the_next_step(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m")
    _pytorch_only(path)
    with pytest.raises(InvalidInput) as caught:
        inspect_model_dir(path)
    assert caught.value.hint is not None and "mlx_lm.convert" in caught.value.hint


def test_unreadable_gguf_folder_is_reported_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "g"
    path.mkdir()
    (path / "model-Q4_K_M.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    info = inspect_model_dir(path)
    assert info.format == "gguf" and not info.supported
    assert info.unsupported is not None and GGUF_UNSUPPORTED in info.unsupported
    assert info.size_bytes == 64
    with pytest.raises(InvalidInput, match="unreadable GGUF file"):
        to_record(info, slug="g")


def test_read_header_skips_metadata(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    mx.save_safetensors(str(path), {"a": mx.zeros((2, 3))}, metadata={"format": "mlx"})
    assert read_safetensors_header(path) == {"a": ("F32", (2, 3))}


def test_to_record(tmp_path: Path) -> None:
    info = inspect_model_dir(write_model(tmp_path / "m", chat_template=True))
    record = to_record(info, slug="tiny", repo_id="org/Tiny", revision="abc", source="hf-cache")
    assert record.cache_path == str(info.path)
    assert record.model_id == "org/Tiny"
    assert (record.parameters, record.size_bytes) == (PARAMETERS, info.size_bytes)
    assert (record.context_length, record.kv_bytes_per_token) == (2048, 512)
    assert record.format == "mlx" and record.model_type == "llama"
    assert record.extra == {
        "architectures": ["LlamaForCausalLM"],
        "dtype": "float32",
        "has_chat_template": True,
        "kind": "chat",
    }
    json.dumps(record.to_dict())  # the registry stores extra as JSON
    with pytest.raises(InvalidInput, match="invalid slug"):
        to_record(info, slug="Not A Slug")
