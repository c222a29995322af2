"""Random-weight BERT encoders with a locally trained WordPiece tokenizer.

`make_embedding_model` writes what a Hugging Face `BertModel` checkpoint holds
(config.json, model.safetensors with HF tensor names, tokenizer.json and its config)
plus the sentence-transformers pooling config, so `engine/bert.py` and
`store/local/kind.py` see it exactly as a downloaded encoder.

`make_reranker_model` writes a cross-encoder as sentence-transformers' CrossEncoder
saves one (e.g. ms-marco-MiniLM): a `BertForSequenceClassification` checkpoint with one
label. Its score for (query, document) is

    logit = classifier(tanh(pooler(h[CLS])))   over "[CLS] query [SEP] document [SEP]"
                                               (token type 0, then 1 from the document)

and relevance = sigmoid(logit), the `activation_fn` its config names. It is told apart
from a sentence encoder by `architectures` (`*ForSequenceClassification`, not
`BertModel`), by `id2label` (one label) and by the missing `1_Pooling/` and
`sentence_bert_config.json`. Same arguments, same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
from mlx.utils import tree_flatten
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from mlxctl.engine.bert import BertConfig, BertModel
from mlxctl.factory.tokenizer import corpus

__all__ = ["EMBEDDING_SIZES", "make_embedding_model", "make_reranker_model"]

_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class _Shape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int


EMBEDDING_SIZES: dict[str, _Shape] = {
    "tiny": _Shape(32, 2, 4, 64, 1024, 128),
    "small": _Shape(128, 4, 4, 512, 4096, 512),
}


def make_embedding_model(out_dir: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a loadable random-weight BERT encoder into `out_dir` and return it."""
    shape, out_dir, config = _start(out_dir, size)
    _write_json(out_dir / "config.json", config)
    weights = _encoder_weights(BertConfig.from_dict(config), seed)
    _save(out_dir / "model.safetensors", weights)
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(shape))
    _write_json(
        out_dir / "sentence_bert_config.json",
        {"do_lower_case": True, "max_seq_length": shape.max_positions},
    )
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"pooling_mode_mean_tokens": True, "word_embedding_dimension": shape.hidden}
    _write_json(out_dir / "1_Pooling" / "config.json", pooling)
    return out_dir


def _start(out_dir: Path, size: str) -> tuple[_Shape, Path, dict[str, Any]]:
    """Check `size`, write the WordPiece tokenizer; the shape, folder and base config."""
    if size not in EMBEDDING_SIZES:
        raise ValueError(f"size must be one of {', '.join(EMBEDDING_SIZES)}, not {size!r}")
    shape = EMBEDDING_SIZES[size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_wordpiece(shape.vocab)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    return shape, out_dir, _config(shape, tokenizer.get_vocab_size())


def _config(shape: _Shape, vocab_size: int) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": shape.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shape.intermediate,
        "layer_norm_eps": 1e-12,
        # mlxctl's marker for a Matryoshka-trained encoder: `dimensions` may truncate it.
        "matryoshka_dimensions": [shape.hidden // 2, shape.hidden],
        "max_position_embeddings": shape.max_positions,
        "model_type": "bert",
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "pad_token_id": 0,
        "torch_dtype": "float32",
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }


def _train_wordpiece(vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(_SPECIALS), show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    # The trained token set is stable but its ids are not (hash-map ties): renumber them,
    # specials first, so the same arguments give the same tokenizer.json and embeddings.
    learned = sorted(set(tokenizer.get_vocab()) - set(_SPECIALS), key=lambda t: (len(t), t))
    vocab = {token: i for i, token in enumerate([*_SPECIALS, *learned])}
    tokenizer.model = models.WordPiece(vocab, unk_token="[UNK]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def _encoder_weights(config: BertConfig, seed: int, std: float = 0.02) -> dict[str, mx.array]:
    """HF BertModel tensors, pooler included: the encoder ignores it when loading."""
    model = BertModel(config)
    key = mx.random.key(seed)
    weights: dict[str, mx.array] = {}
    params = cast(list[tuple[str, mx.array]], tree_flatten(model.parameters()))  # type: ignore[no-untyped-call]
    for name, value in params:
        key, sub = mx.random.split(key)
        if name.endswith("LayerNorm.weight"):
            weights[name] = mx.ones(value.shape)
        elif name.endswith("bias"):
            weights[name] = mx.zeros(value.shape)
        else:
            weights[name] = std * mx.random.normal(value.shape, key=sub)
    h = config.hidden_size
    weights["pooler.dense.weight"] = std * mx.random.normal((h, h), key=key)
    weights["pooler.dense.bias"] = mx.zeros((h,))
    return weights


def _save(path: Path, weights: dict[str, mx.array]) -> None:
    mx.save_safetensors(str(path), dict(sorted(weights.items())), metadata={"format": "pt"})


def make_reranker_model(out_dir: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a loadable random-weight BERT cross-encoder (one relevance logit); return it."""
    shape, out_dir, config = _start(out_dir, size)
    del config["matryoshka_dimensions"]
    config |= {
        "architectures": ["BertForSequenceClassification"],
        "classifier_dropout": None,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        # What sentence-transformers' CrossEncoder records: relevance = sigmoid(logit).
        "sentence_transformers": {"activation_fn": "torch.nn.modules.activation.Sigmoid"},
    }
    _write_json(out_dir / "config.json", dict(sorted(config.items())))
    # Weights of std 1/sqrt(hidden), not BERT's 0.02: the [CLS] state, and so the score,
    # then depends on the whole pair instead of being nearly constant.
    h = shape.hidden
    encoder = _encoder_weights(BertConfig.from_dict(config), seed, std=h**-0.5)
    weights = {f"bert.{name}": value for name, value in encoder.items()}
    key = mx.random.key(seed + 1)
    weights["classifier.weight"] = 2 * h**-0.5 * mx.random.normal((1, h), key=key)
    weights["classifier.bias"] = mx.zeros((1,))
    _save(out_dir / "model.safetensors", weights)
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(shape))
    return out_dir


def _tokenizer_config(shape: _Shape) -> dict[str, Any]:
    return {
        "clean_up_tokenization_spaces": False,
        "cls_token": "[CLS]",
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": shape.max_positions,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]",
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
