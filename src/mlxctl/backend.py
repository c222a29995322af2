"""Which program serves a model, decided once, here, from its registry row (or its files).

    llama.cpp   a GGUF model: `mlxctl worker` on engine/llamacpp.py
    encoder     a BERT sentence encoder or cross-encoder: `mlxctl worker` on engine/encoder.py
    mlx-vlm     a vision-language model: `mlxctl worker` on engine/vlm.py (`mlxctl[vision]`)
    mlx-lm      every other MLX model: `mlxctl worker` on engine/generator.py
    + command   the model's external server command (`register --command`) runs instead
                of `mlxctl worker`; `engine` still says what its files are

The worker picks its engine with it, the supervisor the argv, the router what `model`
an external server is sent, the scheduler's estimate whether the KV cache is shared,
and the capabilities what a model can do. Pure (the row alone), except
`backend_of_path`, which reads a folder served without a registry row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlxctl.registry import ModelRecord
from mlxctl.store.local.kind import KINDS, Kind, kind_of, model_kind

EngineName = Literal["mlx-lm", "llama.cpp", "encoder", "mlx-vlm"]
_ENGINES: dict[Kind, EngineName] = {
    "chat": "mlx-lm",
    "vision": "mlx-vlm",
    "embedding": "encoder",
    "rerank": "encoder",
}


@dataclass(frozen=True)
class Backend:
    engine: EngineName
    command: str | None = None  # the external server command template, if one serves it
    kind: Kind = "chat"

    @property
    def name(self) -> str:
        return "command" if self.command is not None else self.engine

    @property
    def external(self) -> bool:
        """Served by a program of the user's, not `mlxctl worker`."""
        return self.command is not None

    @property
    def shared_kv(self) -> bool:
        """One KV cache for the whole context, shared by every sequence (llama.cpp)."""
        return self.engine == "llama.cpp"

    @property
    def embeds_only(self) -> bool:
        """An encoder: it embeds or reranks, and generates nothing."""
        return self.engine == "encoder"

    @property
    def enforces_schemas(self) -> bool:
        """Our engines constrain decoding to a JSON schema; an external server may not."""
        return not self.external


def backend_of(record: ModelRecord) -> Backend:
    if record.format == "gguf":
        return Backend("llama.cpp", record.command)
    kind = kind_of_record(record)
    return Backend(_ENGINES[kind], record.command, kind)


def kind_of_record(record: ModelRecord) -> Kind:
    """The kind the registry recorded from the files; rows from before it was recorded
    fall back to what `model_type` and `architectures` tell (never "vision")."""
    recorded = record.extra.get("kind")
    for kind in KINDS:
        if recorded == kind:
            return kind
    return kind_of(record.model_type, record.architectures)


def backend_of_path(path: Path) -> Backend:
    """The backend of a model folder or GGUF file served by path (`mlxctl worker ./m`)."""
    if is_gguf(path):
        return Backend("llama.cpp")
    kind = model_kind(path)
    return Backend(_ENGINES[kind], kind=kind)


def is_gguf(path: Path) -> bool:
    """A GGUF file, or a folder of GGUF files without MLX weights (the registry's "gguf")."""
    if path.is_file():
        return path.suffix == ".gguf"
    return not any(path.glob("model*.safetensors")) and any(path.glob("*.gguf"))


def model_target(record: ModelRecord) -> str:
    """What an external command's `{model}` means, and the `model` it is sent: the GGUF
    file of a GGUF model, else the model folder."""
    if record.format == "gguf" and record.gguf_file is not None:
        return str(Path(record.cache_path) / record.gguf_file)
    return record.cache_path
