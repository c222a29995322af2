"""The hybrid and sliding-window factory models: their caches, as the engine will see them.

qwen3_5 (hybrid)        make_cache(): ArraysCache per Gated DeltaNet layer, KVCache per
                        full-attention layer; can_trim_prompt_cache() never True.
gemma3_text (sliding)   make_cache(): RotatingKVCache(max_size=sliding_window) per local
                        layer, KVCache per global layer; trimmable only below the window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from mlx_lm.models.cache import (
    ArraysCache,
    KVCache,
    RotatingKVCache,
    can_trim_prompt_cache,
    make_prompt_cache,
)

from mlxctl.engine import mlxlm
from mlxctl.factory.cachearchs import CACHE_ARCHS
from tests.factory.conftest import Built


def _config(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "config.json").read_text()))


def _prefill(model: Any, cache: list[Any], tokens: list[int], chunk: int) -> mx.array:
    logits = mx.array(0.0)
    for start in range(0, len(tokens), chunk):
        logits = model(mx.array([tokens[start : start + chunk]]), cache=cache)
    return logits[0, -1]


def test_hybrid_cache_is_arrays_and_kv_and_never_trimmable(built: Built) -> None:
    path = built("qwen3_5")
    config = _config(path)
    assert config["model_type"] == "qwen3_5"
    assert config["architectures"] == ["Qwen3_5ForCausalLM"]
    model, tokenizer = mlxlm.load(path)
    cache = make_prompt_cache(model)
    interval = config["full_attention_interval"]
    kinds = [type(c) for c in cache]
    assert kinds == [
        KVCache if (i + 1) % interval == 0 else ArraysCache
        for i in range(config["num_hidden_layers"])
    ]
    assert not can_trim_prompt_cache(cache)
    _prefill(model, cache, tokenizer.encode("def main():\n    return 0\n"), 4)
    assert not can_trim_prompt_cache(cache)
    linear = next(c for c in cache if isinstance(c, ArraysCache))
    assert linear[0] is not None and linear[1] is not None  # conv and recurrent state


def test_sliding_cache_rotates_and_stops_being_trimmable(built: Built) -> None:
    path = built("gemma3_text")
    config = _config(path)
    window, pattern = config["sliding_window"], config["sliding_window_pattern"]
    assert (window, config["architectures"]) == (32, ["Gemma3ForCausalLM"])
    model, _ = mlxlm.load(path)
    cache = make_prompt_cache(model)
    assert [type(c) for c in cache] == [
        KVCache if (i + 1) % pattern == 0 else RotatingKVCache
        for i in range(config["num_hidden_layers"])
    ]
    assert all(c.max_size == window for c in cache if isinstance(c, RotatingKVCache))
    _prefill(model, cache, list(range(10, 10 + window - 1)), 8)
    assert can_trim_prompt_cache(cache)
    _prefill(model, cache, [7, 8], 2)  # one past the window
    assert not can_trim_prompt_cache(cache)


@pytest.mark.parametrize(("arch", "size"), sorted(CACHE_ARCHS))
def test_chunked_prefill_matches_one_pass(built: Built, arch: str, size: str) -> None:
    # The state a cache carries between chunks must be the whole truth, past the window too.
    model, tokenizer = mlxlm.load(built(arch, size))
    tokens = tokenizer.encode("class Cache:\n    def trim(self, n):\n        return n\n" * 4)
    assert len(tokens) > 40
    whole = model(mx.array([tokens]))[0, -1]
    chunked = _prefill(model, make_prompt_cache(model), tokens, 7)
    assert mx.allclose(whole, chunked, atol=1e-3).item()
    assert mx.argmax(whole).item() == mx.argmax(chunked).item()


def test_kv_bytes_per_token_counts_only_what_grows(built: Built) -> None:
    from mlxctl.store.local.modelinfo import inspect_model_dir

    per_layer = 2 * 2 * 16 * 4  # K and V × 2 KV heads × head size 16 × float32
    # qwen3_5 tiny: 1 full-attention layer of 4; 3 Gated DeltaNet layers hold a fixed
    # conv window (3 × (2·2·16 + 4·16)) and recurrent state (4 × 16 × 16), spread over 4096.
    linear = (3 * (2 * 2 * 16 + 4 * 16) + 4 * 16 * 16) * 4
    assert inspect_model_dir(built("qwen3_5")).kv_bytes_per_token == per_layer + -(
        -3 * linear // 4096
    )
    # gemma3_text tiny: 1 global layer of 2; the local one holds at most its 32-token window.
    assert (
        inspect_model_dir(built("gemma3_text")).kv_bytes_per_token
        == per_layer + 32 * per_layer // 4096
    )
