"""What a registered model can do, worked out once for every API that reports it.

`/v1/models`, Ollama's `/api/show` and `mlxctl show` all read `capabilities()`,
so the three never disagree. The vocabulary is ours; `ollama_names` maps it onto
the names Ollama clients expect.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlxctl.backend import backend_of
from mlxctl.errors import InvalidInput
from mlxctl.registry import ModelRecord
from mlxctl.store.local.confine import gguf_file, template_override
from mlxctl.store.local.ggufinfo import chat_template as gguf_chat_template

# Ollama calls reasoning "thinking"; chat and structured output have no Ollama name.
_OLLAMA = {
    "completion": "completion",
    "tools": "tools",
    "reasoning": "thinking",
    "embeddings": "embedding",
    "vision": "vision",
}


def chat_template(record: ModelRecord, *, store_root: Path) -> str:
    """The registry's template override, else the tokenizer's own ("" when none).

    Reads only the model's own files: an override outside the store, or a GGUF
    name leading out of the folder, reads as no template (store/local/confine.py).
    Runs off the event loop in the daemon: it parses GGUF metadata.
    """
    try:
        override = template_override(record, store_root)
        gguf = gguf_file(record)
    except InvalidInput:
        return ""
    if override is not None:
        return _text(override)
    folder = Path(record.cache_path)
    if gguf is not None:
        # A GGUF carries its template in its metadata unless a tokenizer sits beside it.
        embedded = gguf_chat_template(gguf)
        if embedded:
            return embedded
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return _text(jinja)
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return ""
    template = config.get("chat_template") if isinstance(config, dict) else None
    return template if isinstance(template, str) else ""


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""


def capabilities(
    record: ModelRecord, template: str | None = None, *, store_root: Path
) -> list[str]:
    """completion, chat, vision, tools, reasoning, structured_output, embeddings, rerank —
    as the files tell.

    A BERT sentence encoder only embeds, a cross-encoder only reranks. Chat models also
    answer /v1/embeddings (pooled hidden state, docs/embeddings.md) but, as in Ollama,
    do not list it.
    """
    backend = backend_of(record)
    if backend.embeds_only:
        return ["rerank"] if backend.kind == "rerank" else ["embeddings"]
    template = chat_template(record, store_root=store_root) if template is None else template
    found = ["completion"]
    if template:
        found.append("chat")
    if backend.kind == "vision":
        found.append("vision")
    if record.tool_call_parser or "tools" in template:
        found.append("tools")
    if record.reasoning_parser or "<think>" in template or "enable_thinking" in template:
        found.append("reasoning")
    if backend.enforces_schemas:
        found.append("structured_output")
    return found


def ollama_names(found: list[str]) -> list[str]:
    return [_OLLAMA[name] for name in found if name in _OLLAMA]
