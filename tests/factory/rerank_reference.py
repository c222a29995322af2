"""A reference cross-encoder in numpy: a rerank endpoint's scores must equal these.

Reads the checkpoint's own tensors (HF `BertForSequenceClassification` names) and
tokenizer, and shares no code with the engine, so a test can compare the two.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["pair_logit", "relevance_scores", "rerank_logits"]

Array = NDArray[np.float64]
_erf = np.vectorize(math.erf)


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + eps) * weight + bias)


def _linear(w: dict[str, Array], name: str, x: Array) -> Array:
    return np.asarray(x @ w[f"{name}.weight"].T + w[f"{name}.bias"])


def pair_logit(
    w: dict[str, Array], config: dict[str, Any], ids: list[int], types: list[int]
) -> float:
    """One pair's logit from float64 `w` (the checkpoint's tensors) and its token types."""
    eps = float(config["layer_norm_eps"])
    heads = int(config["num_attention_heads"])
    e = "bert.embeddings"
    x = (
        w[f"{e}.word_embeddings.weight"][ids]
        + w[f"{e}.position_embeddings.weight"][: len(ids)]
        + w[f"{e}.token_type_embeddings.weight"][types]
    )
    x = _layer_norm(x, w[f"{e}.LayerNorm.weight"], w[f"{e}.LayerNorm.bias"], eps)
    n, hidden = x.shape
    size = hidden // heads
    for i in range(int(config["num_hidden_layers"])):
        p = f"bert.encoder.layer.{i}"
        q, k, v = (
            _linear(w, f"{p}.attention.self.{m}", x).reshape(n, heads, size).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attended = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
        out = _linear(w, f"{p}.attention.output.dense", attended) + x
        x = _layer_norm(
            out,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
            eps,
        )
        inner = _linear(w, f"{p}.intermediate.dense", x)
        inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))  # exact GELU, as HF's "gelu"
        out = _linear(w, f"{p}.output.dense", inner) + x
        x = _layer_norm(
            out, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], eps
        )
    pooled = np.tanh(_linear(w, "bert.pooler.dense", x[0]))
    return float(_linear(w, "classifier", pooled)[0])


def rerank_logits(model_dir: Path, query: str, documents: list[str]) -> list[float]:
    """The classifier logit of each (query, document) pair, in float64."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    weights = {
        k: v.astype(np.float64)
        for k, v in load_file(str(Path(model_dir) / "model.safetensors")).items()
    }
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    limit = int(config["max_position_embeddings"])
    tokenizer.enable_truncation(limit, strategy="only_second")
    logits = []
    for document in documents:
        encoding = tokenizer.encode(query, document)
        logits.append(pair_logit(weights, config, encoding.ids, encoding.type_ids))
    return logits


def relevance_scores(model_dir: Path, query: str, documents: list[str]) -> list[float]:
    """sigmoid(logit): the relevance a Cohere/Jina-style rerank response reports."""
    return [1.0 / (1.0 + math.exp(-z)) for z in rerank_logits(model_dir, query, documents)]
