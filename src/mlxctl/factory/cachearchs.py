"""Factory architectures whose mlx-lm cache is not a list of plain `KVCache`s.

The engine's prefix reuse trims a cache back to a shared prefix; these two cannot always
be trimmed, so they are the models its state checkpoints are tested on:

    qwen3_5      hybrid, as Qwen3.5 / Qwen3-Next: Gated DeltaNet linear-attention layers
                 with one full-attention layer every `full_attention_interval`.
                 make_cache() → ArraysCache(size=2) per linear layer (conv state,
                 recurrent state) + KVCache per attention layer.
                 can_trim_prompt_cache() is always False (ArraysCache.is_trimmable()).
    gemma3_text  sliding window, as Gemma 3 text: local layers with a window of
                 `sliding_window` tokens and a global layer every `sliding_window_pattern`.
                 make_cache() → RotatingKVCache(max_size=sliding_window) per local layer
                 + KVCache per global layer. can_trim_prompt_cache() is True only while
                 the cache holds fewer than `sliding_window` tokens (offset < max_size).

Both use the chatml tokenizer family; `model.py` builds and saves them like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CACHE_ARCHS", "CacheShape", "cache_arch_config"]


@dataclass(frozen=True)
class CacheShape:
    """What these architectures add to `model.Shape`: head size and the layer pattern."""

    head_dim: int
    interval: int  # full-attention (qwen3_5) or global (gemma3_text) layer every N layers
    window: int = 0  # sliding window in tokens (gemma3_text)
    linear_heads: tuple[int, int] = (0, 0)  # (key heads, value heads) of linear attention


CACHE_ARCHS: dict[tuple[str, str], CacheShape] = {
    # Qwen3.5's 3:1 linear-to-full layer ratio, scaled down.
    ("qwen3_5", "tiny"): CacheShape(16, 4, linear_heads=(2, 4)),
    ("qwen3_5", "small"): CacheShape(64, 4, linear_heads=(4, 8)),
    # Windows far below the context, so a few dozen (tiny) or hundred tokens overflow them.
    ("gemma3_text", "tiny"): CacheShape(16, 2, window=32),
    ("gemma3_text", "small"): CacheShape(64, 4, window=256),
}


def cache_arch_config(arch: str, size: str, common: dict[str, Any]) -> dict[str, Any]:
    """The config.json of `arch`/`size`, from the keys every factory config shares."""
    shape = CACHE_ARCHS[arch, size]
    if arch == "qwen3_5":
        keys, values = shape.linear_heads
        # Flat (text-only) form; mlx-lm also reads Qwen3.5's nested `text_config` one.
        # transformers warns on a `rope_scaling` key here: rope_parameters replaces it.
        flat = {k: v for k, v in common.items() if k != "rope_scaling"}
        return flat | {
            "architectures": ["Qwen3_5ForCausalLM"],
            "attention_bias": False,
            "full_attention_interval": shape.interval,
            "head_dim": shape.head_dim,
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": shape.head_dim,
            "linear_num_key_heads": keys,
            "linear_num_value_heads": values,
            "linear_value_head_dim": shape.head_dim,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000000.0,
                "partial_rotary_factor": 0.25,
            },
        }
    return common | {
        "architectures": ["Gemma3ForCausalLM"],
        "head_dim": shape.head_dim,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": shape.head_dim,
        "rms_norm_eps": 1e-6,
        "rope_local_base_freq": 10000.0,
        "rope_theta": 1000000.0,
        "sliding_window": shape.window,
        "sliding_window_pattern": shape.interval,
    }


def zero_centred_norms(config: dict[str, Any]) -> bool:
    """Gemma's RMSNorm scales by (1 + weight): its neutral weight is 0, not 1."""
    return bool(config.get("model_type") == "gemma3_text")
