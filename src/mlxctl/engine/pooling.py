"""Sentence vectors from hidden states: masked mean pooling, L2 normalisation, padding.

Runs on the engine's thread (it calls MLX). Both the BERT encoder and the chat
models' pooled-hidden-state embedding use it, so their vectors mean the same thing.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx


def pad(token_lists: list[list[int]], pad_id: int) -> tuple[mx.array, mx.array]:
    """Right-padded ids [B, L] and the attention mask [B, L] (1 for real tokens)."""
    width = max(len(tokens) for tokens in token_lists)
    ids = [tokens + [pad_id] * (width - len(tokens)) for tokens in token_lists]
    mask = [[1] * len(tokens) + [0] * (width - len(tokens)) for tokens in token_lists]
    return mx.array(ids, dtype=mx.int32), mx.array(mask, dtype=mx.float32)


def mean_pool(hidden: mx.array, mask: mx.array) -> mx.array:
    """Mean over the real (mask 1) positions of `hidden` [B, L, H] → [B, H], L2-normalised."""
    weights = mask.astype(mx.float32)[..., None]
    summed = (hidden.astype(mx.float32) * weights).sum(axis=1)
    pooled = summed / mx.maximum(weights.sum(axis=1), 1.0)
    return normalize(pooled)


def normalize(vectors: mx.array) -> mx.array:
    norms = mx.sqrt((vectors * vectors).sum(axis=-1, keepdims=True))
    return vectors / mx.maximum(norms, 1e-12)


def chat_embedding(model: Any, tokens: list[int]) -> list[float]:
    """The pooled last hidden state of an mlx-lm causal model for one input.

    mlx-lm models keep the transformer (final norm included, LM head excluded) as
    `model.model`; multimodal wrappers nest it under `language_model`. One input per
    forward pass: a causal model's padding would need a mask per architecture.
    """
    body = getattr(model, "model", None)
    if body is None and hasattr(model, "language_model"):
        body = getattr(model.language_model, "model", None)
    if body is None or not callable(body):
        raise ValueError("this model's hidden states are not reachable for embeddings")
    hidden = body(mx.array([tokens], dtype=mx.int32))
    vector = mean_pool(hidden, mx.ones((1, len(tokens))))[0]
    mx.eval(vector)
    result: list[float] = vector.tolist()  # type: ignore[assignment]
    return result
