"""A registered model: the row the registry keeps for each model.

The first nine fields are the seeds' `registry.json` fields; the rest are what
the scheduler needs to plan memory without loading the model.
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

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


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
