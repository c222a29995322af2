"""What a model folder holds, read from its config and weight headers alone.

`inspect_model_dir` never loads a tensor: parameter counts, dtypes and sizes
come from each safetensors file's JSON header and from `os.stat`. Weight files
are the ones mlx-lm loads (`model*.safetensors`), so a folder we call usable is
one mlx-lm can open. A folder of GGUF files (and no MLX weights) is a "gguf"
model served by llama.cpp; its facts come from the GGUF metadata (`ggufinfo`).
An unreadable GGUF is reported (`FolderInfo.unsupported`) rather than raised.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from mlxctl.errors import InvalidInput
from mlxctl.registry.record import ModelRecord
from mlxctl.store.local.ggufinfo import pick_gguf, read_gguf
from mlxctl.store.local.kind import Kind, model_kind

WEIGHT_GLOB = "model*.safetensors"
GGUF_UNSUPPORTED = "unreadable GGUF file"
# The safetensors format caps its header at 100 MB; anything larger is garbage.
_MAX_HEADER_BYTES = 100_000_000
_FLOAT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_CONFIG_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "fp16": "F16",
    "bfloat16": "BF16",
    "bf16": "BF16",
}
_CONTEXT_KEYS = ("max_position_embeddings", "max_seq_len", "n_positions", "seq_length")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads")
_KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
# The tokens per sequence a sliding window or a recurrent state is spread over (the
# default MLXCTL_KV_CONTEXT): exact there, an overestimate beyond it.
KV_REFERENCE_TOKENS = 4096

# name -> (safetensors dtype, shape)
Tensors = dict[str, tuple[str, tuple[int, ...]]]


class ModelFacts(TypedDict):
    """The facts of a folder that both its registry row and a store manifest keep."""

    format: str
    model_type: str | None
    parameters: int | None
    quant_bits: int | None
    quant_group_size: int | None
    context_length: int | None


@dataclass(frozen=True)
class FolderInfo:
    """What a model folder holds on disk, as the registry and scheduler see it.

    `parameters` counts logical weights: a 4-bit packed matrix counts its
    unpacked elements, and quantization scales/biases are not counted.
    `kv_bytes_per_token` is the KV of the full-attention layers in the activation
    `dtype`, plus sliding-window and linear-attention layers' bounded state spread
    over `KV_REFERENCE_TOKENS`; None when the config lacks the fields to compute it.
    `unsupported` is None for a usable model, else one line saying why not.
    """

    path: Path
    format: str
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    parameters: int | None = None
    size_bytes: int = 0
    quant_bits: int | None = None
    quant_group_size: int | None = None
    context_length: int | None = None
    kv_bytes_per_token: int | None = None
    dtype: str | None = None
    has_chat_template: bool = False
    kind: Kind = "chat"  # store/local/kind.py: what it serves
    unsupported: str | None = None
    # The file a GGUF model is served from, relative to `path`.
    gguf_file: str | None = None
    quantization: str | None = None  # a GGUF file type such as "Q4_K_M"

    @property
    def supported(self) -> bool:
        return self.unsupported is None

    @property
    def facts(self) -> ModelFacts:
        return ModelFacts(
            format=self.format,
            model_type=self.model_type,
            parameters=self.parameters,
            quant_bits=self.quant_bits,
            quant_group_size=self.quant_group_size,
            context_length=self.context_length,
        )


def inspect_model_dir(path: Path) -> FolderInfo:
    """Describe the model in `path`, reading only config files and weight headers.

    Raises `InvalidInput` naming the reason when the folder is not a usable
    model (missing folder or config.json, no model*.safetensors, unreadable
    header, no model_type, incomplete sharded download). A folder of *.gguf
    files returns a `FolderInfo` with format "gguf" (`unsupported` set if unreadable).
    """
    path = Path(path)
    if not path.is_dir():
        raise InvalidInput(f"{path}: not a folder")
    weights = sorted(path.glob(WEIGHT_GLOB))
    ggufs = sorted(path.glob("*.gguf"))
    if not weights and ggufs:
        return _inspect_gguf(path, ggufs)
    config = _read_config(path)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InvalidInput(f"{path}: config.json has no model_type")
    if not weights:
        raise _no_weights(path)
    _check_shards(path)
    size_bytes = _total_size(weights)  # first: a broken link reads better than a bad header
    tensors: Tensors = {}
    for weight in weights:
        tensors.update(read_safetensors_header(weight))
    quant = _quantization(config)
    counted = _count_parameters(tensors, quant)
    dtype = counted.dtype or _config_dtype(config)
    architectures = config.get("architectures")
    return FolderInfo(
        path=path,
        format="mlx",
        model_type=model_type,
        architectures=tuple(a for a in architectures or () if isinstance(a, str)),
        parameters=counted.parameters,
        size_bytes=size_bytes,
        quant_bits=_int(quant.get("bits")) or counted.common_bits,
        quant_group_size=_int(quant.get("group_size")),
        context_length=_lookup(config, _CONTEXT_KEYS),
        kv_bytes_per_token=_kv_bytes_per_token(config, dtype),
        dtype=_DTYPE_NAMES.get(dtype) if dtype else None,
        has_chat_template=_has_chat_template(path),
        kind=model_kind(path),
    )


def _inspect_gguf(path: Path, files: list[Path]) -> FolderInfo:
    size = _total_size(files)
    chosen = pick_gguf(files)
    try:
        gguf = read_gguf(chosen)
    except InvalidInput as e:
        why = e.message.removeprefix(f"{chosen}: ")
        return FolderInfo(
            path=path, format="gguf", size_bytes=size, unsupported=f"{chosen.name}: {why}"
        )
    return FolderInfo(
        path=path,
        format="gguf",
        model_type=gguf.architecture,
        parameters=gguf.parameters,
        size_bytes=size,
        quant_bits=gguf.quant_bits,
        context_length=gguf.context_length,
        kv_bytes_per_token=gguf.kv_bytes_per_token,
        dtype=gguf.dtype,
        has_chat_template=gguf.has_chat_template or _has_chat_template(path),
        gguf_file=chosen.name,
        quantization=gguf.quantization,
    )


def to_record(
    info: FolderInfo,
    *,
    slug: str,
    cache_path: Path | str | None = None,
    repo_id: str | None = None,
    model_id: str | None = None,
    revision: str | None = None,
    source: str = "manual",
) -> ModelRecord:
    """A validated `ModelRecord` for `info`; `model_id` defaults to `repo_id`.

    Raises `InvalidInput` for an unsupported model (an unreadable GGUF) or a bad slug.
    """
    if info.unsupported:
        raise InvalidInput(f"{info.path}: {info.unsupported}")
    record = ModelRecord(
        slug=slug,
        cache_path=str(cache_path if cache_path is not None else info.path),
        repo_id=repo_id,
        model_id=model_id if model_id is not None else repo_id,
        **info.facts,
        size_bytes=info.size_bytes,
        kv_bytes_per_token=info.kv_bytes_per_token,
        revision=revision,
        source=source,
        # extra goes to the registry as JSON: lists, not tuples.
        extra={
            "architectures": list(info.architectures),
            "dtype": info.dtype,
            "has_chat_template": info.has_chat_template,
            "kind": info.kind,
        }
        | (
            {"gguf_file": info.gguf_file, "quantization": info.quantization}
            if info.gguf_file
            else {}
        ),
    )
    return record.validate()


def read_safetensors_json(path: Path) -> dict[str, Any]:
    """A safetensors file's header object (tensor entries and `__metadata__`), read alone.

    Raises `InvalidInput` naming the file when the header cannot be read.
    """
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _bad_header(path, "file is shorter than 8 bytes")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_MAX_HEADER_BYTES, size - 8):
                raise _bad_header(path, f"header length {length} exceeds the file")
            raw = json.loads(f.read(length))
    except OSError as e:
        raise _bad_header(path, e.strerror or str(e)) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad_header(path, "header is not JSON") from e
    if not isinstance(raw, dict):
        raise _bad_header(path, "header is not a JSON object")
    return raw


def read_safetensors_header(path: Path) -> Tensors:
    """Tensor names → (dtype, shape) from a safetensors file's header only.

    Raises `InvalidInput` naming the file when the header cannot be read.
    """
    raw = read_safetensors_json(path)
    tensors: Tensors = {}
    for name, entry in raw.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(dtype, str) or not isinstance(shape, list):
            raise _bad_header(path, f"tensor {name!r} has no dtype/shape")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise _bad_header(path, f"tensor {name!r} has an invalid shape")
        tensors[name] = (dtype, tuple(shape))
    return tensors


@dataclass(frozen=True)
class _Counted:
    parameters: int
    dtype: str | None  # activation dtype read from the weights
    common_bits: int | None  # most common bit width among packed weights


def _count_parameters(tensors: Tensors, quant: Mapping[str, Any]) -> _Counted:
    # mlx packs a quantized `<layer>.weight` into uint32 words beside `<layer>.scales`.
    packed = {
        name[: -len("weight")]
        for name, (dtype, _) in tensors.items()
        if name.endswith(".weight")
        and dtype == "U32"
        and name[: -len("weight")] + "scales" in tensors
    }
    total = 0
    bits_seen: Counter[int] = Counter()
    scale_dtypes: Counter[str] = Counter()
    float_dtypes: Counter[str] = Counter()
    for name, (dtype, shape) in tensors.items():
        elements = math.prod(shape)
        prefix, _, leaf = name.rpartition(".")
        prefix = f"{prefix}." if prefix else ""
        if prefix in packed and leaf in ("scales", "biases"):
            if leaf == "scales" and dtype in _FLOAT_BYTES:
                scale_dtypes[dtype] += elements
            continue
        if prefix in packed and leaf == "weight":
            bits = _packed_bits(prefix, shape, tensors[prefix + "scales"][1], quant)
            bits_seen[bits] += 1
            total += elements * 32 // bits
            continue
        if dtype in _FLOAT_BYTES:
            float_dtypes[dtype] += elements
        total += elements
    # Quantized matmuls compute in the scales' dtype; otherwise the bulk of the weights decides.
    dominant = scale_dtypes or float_dtypes
    return _Counted(
        parameters=total,
        dtype=dominant.most_common(1)[0][0] if dominant else None,
        common_bits=bits_seen.most_common(1)[0][0] if bits_seen else None,
    )


def _packed_bits(
    prefix: str, shape: tuple[int, ...], scales_shape: tuple[int, ...], quant: Mapping[str, Any]
) -> int:
    layer = quant.get(prefix.rstrip("."))
    if isinstance(layer, dict) and _int(layer.get("bits")):
        return int(layer["bits"])
    if bits := _int(quant.get("bits")):
        return bits
    # No config: a packed row of W uint32 words holds in_dims = scales_cols × group_size values.
    group = _int(quant.get("group_size")) or 64
    in_dims = (scales_shape[-1] if scales_shape else 1) * group
    inferred = (shape[-1] if shape else 1) * 32 // max(in_dims, 1)
    return inferred if inferred in (1, 2, 3, 4, 5, 6, 8) else 4


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InvalidInput(f"{path}: no config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidInput(f"{config_path}: unreadable ({e.strerror or e})") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{config_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise InvalidInput(f"{config_path}: not a JSON object")
    return config


def _no_weights(path: Path) -> InvalidInput:
    if any(path.glob("*.bin")) or any(path.glob("*.pth")) or any(path.glob("*.pt")):
        return InvalidInput(
            f"{path}: PyTorch weights only (*.bin/*.pt), no model*.safetensors",
            hint="Convert it for MLX with: mlx_lm.convert --hf-path <repo>",
        )
    others = sorted(p.name for p in path.glob("*.safetensors"))
    if others:
        return InvalidInput(
            f"{path}: no model*.safetensors weights (found {', '.join(others[:3])})"
        )
    return InvalidInput(f"{path}: no weight files (model*.safetensors)")


def _check_shards(path: Path) -> None:
    """A sharded download with shards missing is unusable; say which are gone."""
    index = path / "model.safetensors.index.json"
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        shards = {str(v) for v in weight_map.values()}
    except (OSError, ValueError, AttributeError):
        return  # mlx-lm ignores the index too; it is only a completeness hint
    missing = sorted(s for s in shards if not (path / s).is_file())
    if missing:
        raise InvalidInput(
            f"{path}: incomplete download, {len(missing)} weight shard(s) missing "
            f"({', '.join(missing[:3])})"
        )


def _quantization(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for scope in (config, config.get("text_config")):
        if not isinstance(scope, dict):
            continue
        for key in ("quantization", "quantization_config"):
            value = scope.get(key)
            if isinstance(value, dict):
                return value
    return {}


def _lookup(config: Mapping[str, Any], keys: Iterable[str]) -> int | None:
    """First positive int among `keys`, each tried at top level then in text_config."""
    text = config.get("text_config")
    scopes = [config, text] if isinstance(text, dict) else [config]
    for key in keys:
        for scope in scopes:
            if value := _int(scope.get(key)):
                return value
    return None


def _kv_bytes_per_token(config: Mapping[str, Any], dtype: str | None) -> int | None:
    layers = _lookup(config, _LAYER_KEYS)
    heads = _lookup(config, _HEAD_KEYS)
    kv_heads = _lookup(config, _KV_HEAD_KEYS) or heads
    head_dim = _lookup(config, ("head_dim",))
    hidden = _lookup(config, _HIDDEN_KEYS)
    if head_dim is None and hidden and heads and hidden % heads == 0:
        head_dim = hidden // heads
    if not (layers and kv_heads and head_dim and dtype):
        return None
    width = _FLOAT_BYTES[dtype]
    per_layer = 2 * kv_heads * head_dim * width  # K and V, per KV head
    kinds = _layer_kinds(config, layers)
    full = kinds.count("full")
    window = _lookup(config, ("sliding_window",)) or 0
    # Bounded state (a sliding window, a recurrent state) is spread over the tokens a
    # sequence is budgeted for, so the per-token figure stays one number.
    fixed = kinds.count("sliding") * per_layer * min(window, KV_REFERENCE_TOKENS)
    fixed += kinds.count("linear") * _linear_state_bytes(config, width)
    return full * per_layer + math.ceil(fixed / KV_REFERENCE_TOKENS)


def _layer_kinds(config: Mapping[str, Any], layers: int) -> list[str]:
    """Each layer's cache: "full" (grows per token), "sliding" (a window), "linear" (fixed).

    From `layer_types` when given, else the hybrid/sliding patterns mlx-lm reads.
    """
    text = config.get("text_config")
    scope = text if isinstance(text, dict) and "layer_types" in text else config
    named = scope.get("layer_types")
    if isinstance(named, list) and len(named) == layers:
        kinds = {"linear_attention": "linear", "sliding_attention": "sliding"}
        return [kinds.get(str(kind), "full") for kind in named]
    if interval := _lookup(config, ("full_attention_interval",)):
        return ["full" if (i + 1) % interval == 0 else "linear" for i in range(layers)]
    if (pattern := _lookup(config, ("sliding_window_pattern",))) and _lookup(
        config, ("sliding_window",)
    ):
        return ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers)]
    return ["full"] * layers


def _linear_state_bytes(config: Mapping[str, Any], width: int) -> int:
    """One Gated DeltaNet layer's state: its conv window and its recurrent matrix."""
    key_heads = _lookup(config, ("linear_num_key_heads",)) or 0
    value_heads = _lookup(config, ("linear_num_value_heads",)) or 0
    key_dim = _lookup(config, ("linear_key_head_dim",)) or 0
    value_dim = _lookup(config, ("linear_value_head_dim",)) or 0
    kernel = _lookup(config, ("linear_conv_kernel_dim",)) or 4
    conv = (kernel - 1) * (2 * key_heads * key_dim + value_heads * value_dim)
    return (conv + value_heads * key_dim * value_dim) * width


def _config_dtype(config: Mapping[str, Any]) -> str | None:
    text = config.get("text_config")
    for scope in (config, text if isinstance(text, dict) else {}):
        for key in ("torch_dtype", "dtype"):
            value = scope.get(key)
            if isinstance(value, str):
                name = value.removeprefix("torch.").lower()
                if name in _CONFIG_DTYPES:
                    return _CONFIG_DTYPES[name]
    return None


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        tokenizer_config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(tokenizer_config, dict) and bool(tokenizer_config.get("chat_template"))


def _total_size(files: Iterable[Path]) -> int:
    """Bytes of the real files behind `files`, each counted once (HF snapshots are symlinks)."""
    real: dict[Path, int] = {}
    for file in files:
        try:
            target = file.resolve(strict=True)
            real[target] = target.stat().st_size
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            why = getattr(e, "strerror", None) or e
            raise InvalidInput(f"{file}: missing or broken link ({why})") from e
    return sum(real.values())


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _bad_header(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path}: unreadable safetensors header ({why})")
