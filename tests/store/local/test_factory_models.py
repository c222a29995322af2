"""The store against models from `mlxctl.factory`, checked with mlx-lm itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlx_lm import utils as mlx_lm_utils

from mlxctl import factory
from mlxctl.store.local.hfcache import scan_hf_cache
from mlxctl.store.local.modelinfo import inspect_model_dir
from mlxctl.store.local.removal import execute_removal, plan_removal
from tests.store.store_helpers import disk_bytes


@pytest.mark.parametrize(("arch", "bits"), [("llama", None), ("qwen2", 4), ("llama", 8)])
def test_parameter_count_matches_mlx_lm(tmp_path: Path, arch: str, bits: int | None) -> None:
    path = factory.make_model(tmp_path / arch, arch=arch, quantize_bits=bits)
    info = inspect_model_dir(path)
    model, config = mlx_lm_utils.load_model(path)
    assert info.parameters == mlx_lm_utils.get_total_parameters(model)
    assert info.quant_bits == bits
    assert info.context_length == config["max_position_embeddings"]
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    kv_heads = config.get("num_key_value_heads", heads)
    assert info.kv_bytes_per_token == 2 * config["num_hidden_layers"] * kv_heads * head_dim * 4
    assert info.has_chat_template


def test_scan_and_remove_a_laid_out_model(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    model = factory.make_model(tmp_path / "m", arch="qwen2", quantize_bits=4)
    snapshot = factory.lay_out_hf_cache(model, cache, "mlx-community/Tiny-Qwen2-4bit")

    (found,) = scan_hf_cache(cache).found
    assert found.is_main_ref and Path(found.record.cache_path) == snapshot.resolve()
    assert found.record.parameters == inspect_model_dir(model).parameters

    plan = plan_removal(found.record, [found.record], hf_cache=cache, store_root=tmp_path / "s")
    before = disk_bytes(cache)
    assert execute_removal(plan) == plan.freed_bytes == before - disk_bytes(cache)
    assert scan_hf_cache(cache).found == ()
