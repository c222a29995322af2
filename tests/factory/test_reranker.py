"""The cross-encoder factory: HF sequence-classification layout, and a reference score."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from mlxctl.engine.bert import BertConfig, BertModel
from mlxctl.factory.embedding import make_reranker_model
from tests.factory.rerank_reference import pair_logit, relevance_scores, rerank_logits

QUERY = "How do I read a JSON file in Python?"
DOCUMENTS = [
    "json.load reads a JSON document from a file object and returns Python objects.",
    "The tarfile module reads and writes tar archives.",
    "Paris is the capital of France.",
]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_reranker_model(tmp_path_factory.mktemp("rerank") / "tiny")


def test_writes_a_hf_sequence_classification_model(reranker: Path) -> None:
    config = json.loads((reranker / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "LABEL_0"} and config["label2id"] == {"LABEL_0": 0}
    assert "matryoshka_dimensions" not in config
    assert not (reranker / "1_Pooling").exists()
    assert not (reranker / "sentence_bert_config.json").exists()
    weights = load_file(str(reranker / "model.safetensors"))
    assert weights["classifier.weight"].shape == (1, config["hidden_size"])
    assert weights["classifier.bias"].shape == (1,)
    assert "bert.pooler.dense.weight" in weights
    assert "bert.encoder.layer.1.attention.self.query.weight" in weights
    tokenizer = Tokenizer.from_file(str(reranker / "tokenizer.json"))
    pair = tokenizer.encode(QUERY, DOCUMENTS[0])
    sep = tokenizer.token_to_id("[SEP]")
    first_sep = pair.ids.index(sep)
    assert pair.ids[0] == tokenizer.token_to_id("[CLS]") and pair.ids[-1] == sep
    assert set(pair.type_ids[: first_sep + 1]) == {0} and set(pair.type_ids[first_sep + 1 :]) == {1}


def test_reference_matches_the_mlx_encoder(reranker: Path) -> None:
    # The engine's BertModel (single segment) and the numpy reference must agree exactly
    # on the encoder; the pooler and classifier on top are the HF definitions.
    config = json.loads((reranker / "config.json").read_text())
    raw = load_file(str(reranker / "model.safetensors"))
    encoder = BertModel(BertConfig.from_dict(config))
    encoder.load_weights(
        [
            (k.removeprefix("bert."), mx.array(v))
            for k, v in sorted(raw.items())
            if k.startswith("bert.") and not k.startswith("bert.pooler.")
        ],
        strict=True,
    )
    tokenizer = Tokenizer.from_file(str(reranker / "tokenizer.json"))
    ids = tokenizer.encode(QUERY).ids
    hidden = encoder(mx.array([ids]), mx.ones((1, len(ids))))[0, 0]
    pooled = mx.tanh(hidden @ mx.array(raw["bert.pooler.dense.weight"]).T)
    pooled = pooled + mx.array(raw["bert.pooler.dense.bias"])
    logit = pooled @ mx.array(raw["classifier.weight"]).T + mx.array(raw["classifier.bias"])
    weights = {k: v.astype(np.float64) for k, v in raw.items()}
    expected = pair_logit(weights, config, ids, [0] * len(ids))
    assert float(logit[0]) == pytest.approx(expected, abs=1e-4)


def test_scores_tell_documents_apart(reranker: Path) -> None:
    logits = rerank_logits(reranker, QUERY, DOCUMENTS)
    assert len(set(round(z, 4) for z in logits)) == len(DOCUMENTS)
    scores = relevance_scores(reranker, QUERY, DOCUMENTS)
    assert all(0.0 < s < 1.0 for s in scores)
    assert np.argsort(scores).tolist() == np.argsort(logits).tolist()
    # The document's token type matters: the same text as the query segment scores otherwise.
    swapped = rerank_logits(reranker, DOCUMENTS[0], [QUERY])[0]
    assert abs(swapped - logits[0]) > 1e-4


def test_same_arguments_same_bytes(reranker: Path, tmp_path: Path) -> None:
    again = make_reranker_model(tmp_path / "again")
    other = make_reranker_model(tmp_path / "other", seed=1)

    def digest(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert digest(again) == digest(reranker) != digest(other)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (reranker / name).read_bytes()


def test_unknown_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        make_reranker_model(tmp_path, size="huge")
