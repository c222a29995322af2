"""What a model folder is for: chat, vision (images in, text out), embedding or rerank.

Read from config.json (and whether an image processor config sits beside it), so the
registry, the capabilities and the worker agree without loading weights. Kept apart
from `modelinfo.py` so either can change alone.

    embedding  a BERT-family sentence encoder (`BertModel`)
    rerank     a BERT cross-encoder: `*ForSequenceClassification` with one label
    vision     a `vision_config` object, an image token id and a preprocessor config
    chat       everything else
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args

Kind = Literal["chat", "embedding", "rerank", "vision"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# Encoder-only families `engine/bert.py` computes correctly. RoBERTa (offset positions),
# DistilBERT and nomic-bert (other tensor names) need their own loaders first.
EMBEDDING_TYPES = frozenset({"bert"})
_ENCODER_ARCHITECTURES = ("BertModel",)
_CLASSIFIER_SUFFIX = "ForSequenceClassification"
_IMAGE_TOKEN_KEYS = ("image_token_id", "image_token_index")
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def kind_of(model_type: str | None, architectures: Iterable[str] = ()) -> Kind:
    """The kind from the two facts every registry row keeps; it cannot see a vision tower
    (`model_kind` can, and the registry records its answer: `backend.kind_of_record`)."""
    names = list(architectures)
    encoder = bool(model_type and model_type.lower() in EMBEDDING_TYPES)
    if encoder and any(a.endswith(_CLASSIFIER_SUFFIX) for a in names):
        return "rerank"
    if encoder or any(a in _ENCODER_ARCHITECTURES for a in names):
        return "embedding"
    return "chat"


def config_kind(config: dict[str, Any], *, has_processor: bool) -> Kind:
    """The kind of a parsed config.json; `has_processor`: an image processor config is there."""
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    names = (
        [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
    )
    kind = kind_of(model_type if isinstance(model_type, str) else None, names)
    if kind == "rerank" and _labels(config) != 1:
        return "embedding"  # a classifier of several labels scores no relevance
    if kind == "chat" and is_vision_config(config) and has_processor:
        return "vision"
    return kind


def is_vision_config(config: dict[str, Any]) -> bool:
    """A vision tower (`vision_config`) and the token that stands for an image."""
    if not isinstance(config.get("vision_config"), dict):
        return False
    text = config.get("text_config")
    places = [config, text] if isinstance(text, dict) else [config]
    return any(isinstance(p.get(key), int) for p in places for key in _IMAGE_TOKEN_KEYS)


def model_kind(path: Path) -> Kind:
    """The kind of a model folder; "chat" when config.json is missing or unreadable."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return "chat"
    if not isinstance(config, dict):
        return "chat"
    has_processor = any((path / name).is_file() for name in _PROCESSOR_FILES)
    return config_kind(config, has_processor=has_processor)


def _labels(config: dict[str, Any]) -> int:
    """How many labels a classifier has (`num_labels`, else `id2label`; HF's default 2)."""
    number = config.get("num_labels")
    if isinstance(number, int):
        return number
    labels = config.get("id2label")
    return len(labels) if isinstance(labels, dict) else 2
