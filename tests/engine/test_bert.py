"""The MLX BERT encoder against a NumPy reference, padding, and the encoder engine."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from mlxctl.engine.bert import load_bert
from mlxctl.engine.encoder import EncoderEngine
from mlxctl.engine.generator import Engine, QueueFull
from mlxctl.engine.pooling import pad
from mlxctl.factory.embedding import make_embedding_model

_erf = np.frompyfunc(math.erf, 1, 1)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_embedding_model(tmp_path_factory.mktemp("bert") / "tiny")


def _reference(w: dict[str, np.ndarray], ids: list[int], layers: int, heads: int) -> np.ndarray:
    """HF BertModel's forward pass + mean pooling, written out in float64 NumPy."""

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return np.asarray((x - mu) / np.sqrt(var + 1e-12) * w[f"{name}.weight"] + w[f"{name}.bias"])

    def dense(x: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(x @ w[f"{name}.weight"].T + w[f"{name}.bias"])

    e = "embeddings."
    n = len(ids)
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:n]
    x = ln(x + w[e + "token_type_embeddings.weight"][0], e + "LayerNorm")
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q, k, v = (dense(x, p + f"attention.self.{m}") for m in ("query", "key", "value"))
        d = x.shape[-1] // heads
        out = np.zeros_like(x)
        for h in range(heads):
            s = slice(h * d, (h + 1) * d)
            scores = q[:, s] @ k[:, s].T / math.sqrt(d)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            out[:, s] = (probs / probs.sum(-1, keepdims=True)) @ v[:, s]
        x = ln(dense(out, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        hidden = dense(x, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1 + np.asarray(_erf(hidden / math.sqrt(2)), dtype=np.float64))
        x = ln(dense(hidden, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    return np.asarray(pooled / np.linalg.norm(pooled))


def test_matches_a_numpy_reference_with_padding(bert: Path) -> None:
    weights = {
        k: v.astype(np.float64) for k, v in load_file(str(bert / "model.safetensors")).items()
    }
    inputs = [[2, 40, 41, 42, 3], [2, 7, 3]]
    model = load_bert(bert)
    ids, mask = pad(inputs, 0)
    vectors = np.array(model.embed(ids, mask))
    for row, tokens in zip(vectors, inputs, strict=True):
        assert np.allclose(row, _reference(weights, tokens, layers=2, heads=4), atol=1e-5)


def test_loads_prefixed_and_old_layer_norm_names(bert: Path, tmp_path: Path) -> None:
    weights = load_file(str(bert / "model.safetensors"))
    renamed = {
        "bert."
        + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for k, v in weights.items()
    }
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((bert / name).read_bytes())
    save_file(renamed, str(tmp_path / "model.safetensors"))
    ids, mask = pad([[2, 9, 3]], 0)
    assert mx.allclose(load_bert(tmp_path).embed(ids, mask), load_bert(bert).embed(ids, mask))


def test_encoder_engine_embeds_on_its_thread(bert: Path) -> None:
    engine = EncoderEngine(bert, max_batch=2)
    engine.start()
    try:
        inputs = [engine.tokenizer.encode(t) for t in ("a", "b c", "d e f")]
        vectors = asyncio.run(engine.embed(inputs))  # three rows: two chunks of max_batch
        alone = asyncio.run(engine.embed(inputs[2:]))
        assert len(vectors) == 3 and np.allclose(vectors[2], alone[0], atol=1e-6)
        with pytest.raises(ValueError):
            asyncio.run(engine.embed([[]]))
        assert engine.stats()["inputs_total"] == 4
    finally:
        engine.close()


def test_encoder_engine_bounds_requests_in_flight(bert: Path) -> None:
    engine = EncoderEngine(bert, max_queue=0)
    engine.start()
    try:
        ids = engine.tokenizer.encode("a b")

        async def two_at_once() -> list[Any]:
            return await asyncio.gather(
                engine.embed([ids]), engine.embed([ids]), return_exceptions=True
            )

        first, second = asyncio.run(two_at_once())
        assert isinstance(first, list) and isinstance(second, QueueFull)
        assert len(asyncio.run(engine.embed([ids]))) == 1  # the place was given back
    finally:
        engine.close()


def test_chat_engine_embeds_between_steps(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    tokens = [1, 2, 3, 4]
    first, again = asyncio.run(engine.embed([tokens, tokens]))
    assert first == again and abs(math.fsum(x * x for x in first) - 1) < 1e-4
