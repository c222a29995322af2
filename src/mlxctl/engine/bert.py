"""BERT in MLX, loading Hugging Face `BertModel` and `BertForSequenceClassification`
safetensors as they are.

    ids, mask, types ─▶ embeddings (word + position + token type, LayerNorm)
                     ─▶ N post-LN encoder layers (self-attention, GELU MLP)
      sentence encoder ─▶ masked mean pooling ─▶ L2 normalisation  (engine/pooling.py)
      cross-encoder    ─▶ tanh(pooler(h[CLS])) ─▶ classifier ─▶ one logit per pair

Module attribute names follow the HF tensor names (`encoder.layer.0.attention.self.query`),
so a sentence encoder loads with no renaming beyond dropping a `bert.` prefix, and a
cross-encoder (`bert.*`, `classifier.*`) with none. Runs on one thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mlx.core as mx
from mlx.nn.layers.activations import gelu
from mlx.nn.layers.base import Module
from mlx.nn.layers.embedding import Embedding
from mlx.nn.layers.linear import Linear
from mlx.nn.layers.normalization import LayerNorm

from mlxctl.engine.pooling import mean_pool

__all__ = ["BertConfig", "BertModel", "CrossEncoder", "load_bert", "load_cross_encoder"]


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> BertConfig:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in config.items() if k in names})


class _Embeddings(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.word_embeddings = Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def __call__(self, ids: mx.array, types: mx.array | None) -> mx.array:
        positions = mx.arange(ids.shape[1])[None, :]
        if types is None:
            types = mx.zeros_like(ids)  # single-segment inputs: type 0 throughout
        x = self.word_embeddings(ids) + self.position_embeddings(positions)
        out: mx.array = self.LayerNorm(x + self.token_type_embeddings(types))
        return out


class _SelfAttention(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.heads = c.num_attention_heads
        self.query = Linear(c.hidden_size, c.hidden_size)
        self.key = Linear(c.hidden_size, c.hidden_size)
        self.value = Linear(c.hidden_size, c.hidden_size)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        b, n, h = x.shape

        def split(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, -1).transpose(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scale = (h // self.heads) ** -0.5
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=bias)
        return out.transpose(0, 2, 1, 3).reshape(b, n, h)


class _Dense(Module):
    """`dense` + residual + `LayerNorm`: HF's BertSelfOutput and BertOutput."""

    def __init__(self, d_in: int, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dense = Linear(d_in, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        out: mx.array = self.LayerNorm(self.dense(x) + residual)
        return out


class _Attention(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.self = _SelfAttention(c)  # HF names this submodule `self`
        self.output = _Dense(c.hidden_size, c)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        attention: _SelfAttention = self.self
        return self.output(attention(x, bias), x)


class _Intermediate(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dense = Linear(c.hidden_size, c.intermediate_size)

    def __call__(self, x: mx.array) -> mx.array:
        return gelu(self.dense(x))


class _Layer(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Dense(c.intermediate_size, c)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class _Encoder(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.layer = [_Layer(c) for _ in range(c.num_hidden_layers)]


class _Pooler(Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dense = Linear(c.hidden_size, c.hidden_size)

    def __call__(self, first: mx.array) -> mx.array:
        return mx.tanh(self.dense(first))


class BertModel(Module):
    """Token ids [B, L], mask [B, L] and token types [B, L] (default all 0) → last hidden
    state [B, L, H] (`__call__`). `pooled=True` keeps HF's pooler (a cross-encoder's)."""

    def __init__(self, config: BertConfig, *, pooled: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        if pooled:
            self.pooler = _Pooler(config)

    def __call__(self, ids: mx.array, mask: mx.array, types: mx.array | None = None) -> mx.array:
        # Padded keys get a large negative bias; every query still sees its real keys.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(mx.float32)
        x = self.embeddings(ids, types)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x

    def embed(self, ids: mx.array, mask: mx.array) -> mx.array:
        """Mean-pooled, L2-normalised sentence vectors [B, H]."""
        return mean_pool(self(ids, mask), mask)


class CrossEncoder(Module):
    """HF's BertForSequenceClassification with one label: a (query, document) pair's
    ids, mask and token types [B, L] → its relevance logit [B] (`__call__`)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.bert = BertModel(config, pooled=True)
        self.classifier = Linear(config.hidden_size, 1)

    def __call__(self, ids: mx.array, mask: mx.array, types: mx.array) -> mx.array:
        bert: BertModel = self.bert
        pooled = bert.pooler(bert(ids, mask, types)[:, 0])
        logits: mx.array = self.classifier(pooled)[:, 0]
        return logits


def load_bert(path: Path) -> BertModel:
    """A BertModel from `path`'s config.json and *.safetensors (HF names; pooler dropped)."""
    model = BertModel(_config(path))
    renamed = {_modern(name.removeprefix("bert.")): value for name, value in _weights(path)}
    kept = {k: v for k, v in renamed.items() if not k.startswith(("pooler.", "cls."))}
    return _loaded(model, kept)


def load_cross_encoder(path: Path) -> CrossEncoder:
    """A CrossEncoder from a one-label `*ForSequenceClassification` checkpoint."""
    return _loaded(CrossEncoder(_config(path)), {_modern(n): v for n, v in _weights(path)})


def _config(path: Path) -> BertConfig:
    return BertConfig.from_dict(json.loads((path / "config.json").read_text()))


def _weights(path: Path) -> list[tuple[str, mx.array]]:
    """Every tensor of the checkpoint but the position-id buffers some exports carry."""
    weights: dict[str, mx.array] = {}
    for file in sorted(path.glob("*.safetensors")):
        loaded: dict[str, mx.array] = mx.load(str(file))  # type: ignore[assignment]
        weights.update(loaded)
    return [(k, v) for k, v in weights.items() if not k.endswith("position_ids")]


def _modern(name: str) -> str:
    """Old checkpoints name LayerNorm parameters `gamma`/`beta`."""
    name = name.replace("LayerNorm.gamma", "LayerNorm.weight")
    return name.replace("LayerNorm.beta", "LayerNorm.bias")


M = TypeVar("M", bound=Module)


def _loaded(model: M, weights: dict[str, mx.array]) -> M:
    model.load_weights(sorted(weights.items()), strict=True)
    mx.eval(model.parameters())  # type: ignore[no-untyped-call]
    return model
