"""What a GGUF file holds, read from its metadata and tensor index alone.

`read_gguf` memory-maps the file with the `gguf` library and never touches tensor
data: architecture, file type (the quantization), context length, parameter count
(summed tensor elements) and the KV cache cost per token, which llama.cpp keeps in
f16 by default: 2 (K and V) × layers × kv_heads × head_dim × 2 bytes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxctl.errors import InvalidInput

__all__ = ["GGUF_MAX_CONTEXT", "GgufInfo", "chat_template", "pick_gguf", "read_gguf"]

_KV_BYTES = 2  # f16 K/V cache entries, llama.cpp's default
# The context our llama.cpp engine allocates when none is asked for: the model's, capped
# (llama.cpp allocates all of it up front, shared by every sequence).
GGUF_MAX_CONTEXT = 8192
# Bits per weight of the common file types (general.file_type), for the registry's quant_bits.
_FILE_TYPE_BITS = {
    "MOSTLY_Q4_0": 4,
    "MOSTLY_Q4_1": 4,
    "MOSTLY_Q5_0": 5,
    "MOSTLY_Q5_1": 5,
    "MOSTLY_Q8_0": 8,
    "MOSTLY_Q2_K": 2,
    "MOSTLY_Q3_K_S": 3,
    "MOSTLY_Q3_K_M": 3,
    "MOSTLY_Q3_K_L": 3,
    "MOSTLY_Q4_K_S": 4,
    "MOSTLY_Q4_K_M": 4,
    "MOSTLY_Q5_K_S": 5,
    "MOSTLY_Q5_K_M": 5,
    "MOSTLY_Q6_K": 6,
}
_FLOAT_TYPES = {"ALL_F32": "float32", "MOSTLY_F16": "float16", "MOSTLY_BF16": "bfloat16"}


@dataclass(frozen=True)
class GgufInfo:
    """One GGUF file as the registry sees it; `quantization` is e.g. "Q4_0" or "F16"."""

    path: Path
    architecture: str
    quantization: str | None
    quant_bits: int | None
    dtype: str | None
    context_length: int | None
    kv_bytes_per_token: int | None
    parameters: int
    size_bytes: int
    has_chat_template: bool
    name: str | None = None


def pick_gguf(files: list[Path]) -> Path:
    """The file of a folder to serve: the first shard of a split model, else the first by name."""
    shards = [f for f in files if "-00001-of-" in f.name]
    return sorted(shards or files)[0]


def read_gguf(path: Path) -> GgufInfo:
    """Describe the GGUF file at `path`; `InvalidInput` naming it when it cannot be read."""
    try:
        import gguf
    except ImportError as e:  # pragma: no cover - gguf is a dependency of the gguf extra
        raise InvalidInput(
            f"{path}: reading GGUF needs the gguf package", hint="pip install 'mlxctl[gguf]'"
        ) from e
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise InvalidInput(f"{path}: unreadable GGUF file ({e})") from e
    fields = {name: _value(field) for name, field in reader.fields.items()}
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        raise InvalidInput(f"{path}: GGUF file has no general.architecture")

    def key(name: str) -> int | None:
        value = fields.get(f"{arch}.{name}")
        return int(value) if isinstance(value, int) and value > 0 else None

    layers, heads = key("block_count"), key("attention.head_count")
    kv_heads = key("attention.head_count_kv") or heads
    head_dim = key("attention.key_length")
    embedding = key("embedding_length")
    if head_dim is None and embedding and heads:
        head_dim = embedding // heads
    kv = 2 * layers * kv_heads * head_dim * _KV_BYTES if layers and kv_heads and head_dim else None
    quant, bits, dtype = _file_type(fields.get("general.file_type"), reader)
    name = fields.get("general.name")
    return GgufInfo(
        path=path,
        architecture=arch,
        quantization=quant,
        quant_bits=bits,
        dtype=dtype,
        context_length=key("context_length"),
        kv_bytes_per_token=kv,
        parameters=sum(math.prod(int(d) for d in t.shape) for t in reader.tensors),
        size_bytes=path.resolve().stat().st_size,
        has_chat_template=isinstance(fields.get("tokenizer.chat_template"), str),
        name=name if isinstance(name, str) else None,
    )


def chat_template(path: Path) -> str:
    """The GGUF's `tokenizer.chat_template` ("" when it has none or cannot be read).

    Parsing reads the whole metadata (the vocabulary too), so the answer is kept
    per (file, mtime, size): `/v1/models` lists every model on each call.
    """
    try:
        st = path.stat()
    except OSError:
        return ""
    return _chat_template(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=128)
def _chat_template(path: str, mtime_ns: int, size: int) -> str:
    try:
        import gguf

        field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
        value = field.contents() if field is not None else ""
    except Exception:  # any damaged file: one model without a template, never a failed listing
        return ""
    return value if isinstance(value, str) else ""


def _value(field: Any) -> Any:
    # Large arrays (the vocabulary) are not needed here; skip decoding them.
    if len(field.data) > 1:
        return None
    try:
        return field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _file_type(value: Any, reader: Any) -> tuple[str | None, int | None, str | None]:
    import gguf

    if isinstance(value, int):
        try:
            name = gguf.LlamaFileType(value).name
        except ValueError:
            name = None
        if name is not None:
            short = name.removeprefix("MOSTLY_").removeprefix("ALL_")
            return short, _FILE_TYPE_BITS.get(name), _FLOAT_TYPES.get(name)
    # No file type: the most common type among 2-D tensors tells.
    kinds = [t.tensor_type.name for t in reader.tensors if len(t.shape) > 1]
    if not kinds:
        return None, None, None
    common = max(set(kinds), key=kinds.count)
    return common, _FILE_TYPE_BITS.get(f"MOSTLY_{common}"), None
