"""A registered model: the row the registry keeps for each model.

The first nine fields are the seeds' `registry.json` fields; the rest are what
the scheduler needs to plan memory without loading the model. `extra` is stored
(and exported) as one JSON object; code reads it only through the typed
properties below, which treat a malformed value as absent (import checks it).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mlxctl import parsers
from mlxctl.errors import InvalidInput

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")
FORMATS = ("mlx", "gguf")
PORT_MIN, PORT_MAX = 1, 65535
_DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ModelRecord:
    slug: str
    cache_path: str
    repo_id: str | None = None
    model_id: str | None = None
    format: str = "mlx"
    port: int | None = None
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    # What the scheduler needs (read from config.json and the weight files).
    model_type: str | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    quant_bits: int | None = None
    quant_group_size: int | None = None
    context_length: int | None = None
    kv_bytes_per_token: int | None = None
    # Provenance.
    revision: str | None = None
    source: str = "manual"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> ModelRecord:
        check_slug(self.slug)
        if self.format not in FORMATS:
            raise InvalidInput(
                f"model '{self.slug}': format {self.format!r} is not one of {', '.join(FORMATS)}"
            )
        if self.port is not None:
            check_port(self.port, where=f"model '{self.slug}'")
        if not self.cache_path:
            raise InvalidInput(f"model '{self.slug}': cache_path is empty")
        for name in ("parameters", "size_bytes", "context_length", "kv_bytes_per_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidInput(f"model '{self.slug}': {name} must be a non-negative integer")
        parsers.check(self.tool_call_parser, self.reasoning_parser, where=f"model '{self.slug}'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # Typed views of `extra` --------------------------------------------------------

    @property
    def command(self) -> str | None:
        """The external server command template (`register --command`), if any."""
        return _text(self.extra.get("command"))

    @property
    def gguf_file(self) -> str | None:
        """The GGUF file's name inside `cache_path` (GGUF models)."""
        return _text(self.extra.get("gguf_file"))

    @property
    def dtype_bytes(self) -> int | None:
        """Bytes per activation element (the dtype the KV cache is kept in), if known."""
        return _DTYPE_BYTES.get(_text(self.extra.get("dtype")) or "")

    @property
    def architectures(self) -> tuple[str, ...]:
        """config.json's `architectures` (`Qwen2ForCausalLM`, `BertModel`, ...)."""
        value = self.extra.get("architectures")
        return tuple(a for a in value if isinstance(a, str)) if isinstance(value, list) else ()

    @property
    def store(self) -> StoreRef | None:
        """Where a store model lives (`pull`, `create`); None for other models."""
        value = self.extra.get("store")
        if not isinstance(value, dict):
            return None
        name, root = _text(value.get("name")), _text(value.get("root"))
        if name is None or root is None:
            return None
        return StoreRef(name, root, _text(value.get("manifest")))

    @property
    def origin(self) -> str | None:
        """The HF snapshot (`hf://repo@revision`) a store model was taken from."""
        return _text(self.extra.get("origin"))

    @property
    def adapter_path(self) -> object:
        """The LoRA adapter folder as the row names it (checked by `store.confine`)."""
        return self.extra.get("adapter_path")

    @property
    def damaged_files(self) -> list[str]:
        """Files `store verify` found damaged (a damaged model is never served)."""
        value = self.extra.get("store_damaged")
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def request_options(self) -> object:
        """A ModelSpec's PARAMETER defaults (checked by the worker)."""
        return self.extra.get("options") or {}

    @property
    def system(self) -> str | None:
        """A ModelSpec's SYSTEM prompt."""
        return _text(self.extra.get("system"))

    @property
    def messages(self) -> object:
        """A ModelSpec's MESSAGE turns (checked by the worker)."""
        return self.extra.get("messages")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class StoreRef:
    """A store model's tag, the store it lives in and its manifest digest."""

    name: str
    root: str
    manifest: str | None = None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise InvalidInput(
            f"invalid slug {slug!r}: use 1-128 characters of a-z, 0-9, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return slug


def check_port(port: object, where: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise InvalidInput(f"{where}: port {port!r} is not an integer in {PORT_MIN}-{PORT_MAX}")
    return port


def slugify(name: str) -> str:
    """A valid slug from a repo id or folder name: `mlx-community/Qwen2.5-0.5B` → `qwen2.5-0.5b`."""
    base = name.rsplit("/", 1)[-1].lower()
    base = re.sub(r"[^a-z0-9._:-]+", "-", base).strip("-._:")
    return (base or "model")[:128]
