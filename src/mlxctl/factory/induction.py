"""An induction circuit planted in a qwen2 model before training: copying from the start.

A small model trained for minutes on this CPU never learns to copy its context (an
induction head forms after a phase change thousands of steps away). `plant_induction`
sets the first two layers' attention, before training, to the textbook two-head circuit:

- layer 0, a previous-token head: constant queries and keys (biases only) whose RoPE
  phases peak at distance 1 write the previous token's embedding into the upper half
  of the residual stream (the token's own embedding lives in the lower half);
- layer 1, an induction head: the current token (lower half) queried against each
  position's previous token (upper half), on RoPE's slowest pairs, which barely turn
  over a few thousand positions; it copies what followed the earlier occurrence into
  the lower half, where the tied embeddings read it as the next token.

Every other residual branch (the other attention outputs, all MLPs) starts at zero, so
the circuit is what the untrained model does; training then builds language around it.
Deterministic from `seed`.
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx
import numpy as np

__all__ = ["fits", "plant_induction"]

_POSITION_PAIRS = 4  # RoPE's fastest pairs: the previous-token head's position pattern
_CONTENT_FROM = 12  # RoPE pairs from here on turn < 0.2 rad over 200 positions
_EMBED_NORM = 4.0
_MATCH_GAIN = 2.0
_COPY_GAIN = 1.25  # per head; two heads copy


def fits(config: dict[str, Any]) -> bool:
    """Whether `config`'s shape has room for the circuit (three head-sized slots, slow pairs)."""
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    head_dim = hidden // heads
    return (
        int(config["num_key_value_heads"]) == 2
        and heads % 2 == 0
        and int(config["num_hidden_layers"]) >= 2
        and hidden >= 3 * head_dim
        and head_dim >= 2 * _CONTENT_FROM + 8
    )


def plant_induction(model: Any, config: dict[str, Any], *, seed: int) -> None:
    """Overwrite `model`'s embeddings and first two layers with the copying circuit."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config["num_key_value_heads"])
    head_dim = hidden // heads
    pairs = head_dim // 2
    if not fits(config):
        raise ValueError(
            "plant_induction needs 2 kv heads, 2+ layers, hidden >= 3 x head_dim and "
            f"head_dim >= {2 * _CONTENT_FROM + 8}"
        )
    group = heads // kv_heads
    theta = float(config.get("rope_theta", 10000.0))
    freqs = theta ** (-np.arange(pairs) / pairs)
    rng = np.random.default_rng(seed)
    layers = model.model.layers
    # Residual slots: the token (A), the token before (B), the one before that (C).
    slot_a, slot_b, slot_c = (slice(i * head_dim, (i + 1) * head_dim) for i in range(3))
    eye = np.eye(head_dim, dtype=np.float32)

    embed = np.array(model.model.embed_tokens.weight)
    embed[:, head_dim:] = 0.0
    norms = np.linalg.norm(embed[:, :head_dim], axis=1, keepdims=True)
    embed[:, :head_dim] *= _EMBED_NORM / np.maximum(norms, 1e-6)
    model.model.embed_tokens.weight = mx.array(embed)

    for layer in layers:  # every residual branch starts at zero but the planted heads
        layer.self_attn.o_proj.weight = mx.zeros_like(layer.self_attn.o_proj.weight)
        layer.mlp.down_proj.weight = mx.zeros_like(layer.mlp.down_proj.weight)

    # Layer 0: position-only heads (biases, q = R(-d) k) one and two tokens back.
    attn = layers[0].self_attn
    amp = math.sqrt(14.0 * math.sqrt(head_dim) / (_POSITION_PAIRS * 0.35))
    key = np.zeros(head_dim, dtype=np.float32)
    key[:_POSITION_PAIRS] = amp
    queries = []
    for back in (1, 2):
        query = np.zeros(head_dim, dtype=np.float32)
        for i in range(_POSITION_PAIRS):
            query[i] = amp * math.cos(back * freqs[i])
            query[i + pairs] = -amp * math.sin(back * freqs[i])
        queries.append(np.tile(query, group))
    attn.q_proj.weight = mx.zeros_like(attn.q_proj.weight)
    attn.k_proj.weight = mx.zeros_like(attn.k_proj.weight)
    attn.q_proj.bias = mx.array(np.concatenate(queries))
    attn.k_proj.bias = mx.array(np.tile(key, kv_heads))
    value = np.zeros((kv_heads * head_dim, hidden), dtype=np.float32)
    value[:head_dim, slot_a] = eye
    value[head_dim:, slot_a] = eye
    attn.v_proj.weight = mx.array(value)
    attn.v_proj.bias = mx.zeros_like(attn.v_proj.bias)
    out = np.zeros((hidden, heads * head_dim), dtype=np.float32)
    out[slot_b, :head_dim] = eye  # the first head of each group writes
    out[slot_c, group * head_dim : (group + 1) * head_dim] = eye
    attn.o_proj.weight = mx.array(out)

    # Layer 1: (token, token before) here against (token before, the one before) there;
    # on a match, copy that position's token. A is scaled up to B's size after layer 0's
    # norm (B and C hold normed embeddings, A the raw one).
    attn = layers[1].self_attn
    lift = math.sqrt(hidden) / _EMBED_NORM
    slow = [*range(_CONTENT_FROM, pairs), *range(pairs + _CONTENT_FROM, head_dim)]
    query_w = np.zeros((heads * head_dim, hidden), dtype=np.float32)
    key_w = np.zeros((kv_heads * head_dim, hidden), dtype=np.float32)
    out = np.zeros((hidden, heads * head_dim), dtype=np.float32)
    for g in range(kv_heads):
        mix = np.linalg.qr(rng.standard_normal((2 * head_dim, len(slow))))[0].T
        mix *= _MATCH_GAIN
        head = g * group * head_dim
        query_w[[head + d for d in slow], slot_a] = mix[:, :head_dim] * lift
        query_w[[head + d for d in slow], slot_b] = mix[:, head_dim:]
        key_w[[g * head_dim + d for d in slow], slot_b] = mix[:, :head_dim]
        key_w[[g * head_dim + d for d in slow], slot_c] = mix[:, head_dim:]
        out[slot_a, head : head + head_dim] = eye * _COPY_GAIN
    attn.q_proj.weight = mx.array(query_w)
    attn.k_proj.weight = mx.array(key_w)
    attn.q_proj.bias = mx.zeros_like(attn.q_proj.bias)
    attn.k_proj.bias = mx.zeros_like(attn.k_proj.bias)
    attn.v_proj.weight = mx.array(value)
    attn.v_proj.bias = mx.zeros_like(attn.v_proj.bias)
    attn.o_proj.weight = mx.array(out)
    mx.eval(model.parameters())
