"""What a model folder is for: chat (generation) or embedding (a sentence encoder).

Read from config.json alone, so the registry, the capabilities and the worker agree
without loading weights. Kept apart from `modelinfo.py` so either can change alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

Kind = Literal["chat", "embedding"]

# Encoder-only families `engine/bert.py` computes correctly. RoBERTa (offset positions),
# DistilBERT and nomic-bert (other tensor names) need their own loaders first.
EMBEDDING_TYPES = frozenset({"bert"})
_ENCODER_ARCHITECTURES = ("BertModel",)


def kind_of(model_type: str | None, architectures: Iterable[str] = ()) -> Kind:
    """ "embedding" for BERT-family encoders, else "chat"."""
    if model_type and model_type.lower() in EMBEDDING_TYPES:
        return "embedding"
    if any(a in _ENCODER_ARCHITECTURES for a in architectures):
        return "embedding"
    return "chat"


def model_kind(path: Path) -> Kind:
    """The kind of a model folder; "chat" when config.json is missing or unreadable."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return "chat"
    if not isinstance(config, dict):
        return "chat"
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    names = (
        [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
    )
    return kind_of(model_type if isinstance(model_type, str) else None, names)
