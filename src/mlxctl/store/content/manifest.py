"""Model manifests: OCI image manifests with mlxctl's media types.

A model is one OCI image manifest (schemaVersion 2): a config descriptor for
`ModelConfig` (what the server needs: architecture facts, parser names, which
layer is the chat template) and one layer per file, each annotated with
`org.opencontainers.image.title` = the file's path inside the model folder.
Any OCI registry stores and serves it as is.

Media types (`application/vnd.mlxctl.model.*`):

    config.v1+json          the config blob (ModelConfig)
    hf-config.v1+json       config.json          weights.v1.safetensors   model*.safetensors
    weights-index.v1+json   the shard index      tokenizer.v1             tokenizer files
    generation.v1+json      generation_config    template.v1+jinja        chat template
    params.v1+json          PARAMETER defaults   system.v1+text           SYSTEM prompt
    messages.v1+json        MESSAGE few-shots    adapter.v1.safetensors   LoRA adapter weights
    adapter-config.v1+json  adapter config       license.v1+text          LICENSE
    spec.v1+text            the ModelSpec it was created from            file.v1  anything else
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mlxctl.errors import InvalidInput
from mlxctl.store.content.blobs import check_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TITLE = "org.opencontainers.image.title"
MAX_LAYERS = 4096  # a model is tens of files; more is a hostile or broken manifest
_MAX_SEGMENT = 255  # bytes: NAME_MAX on Linux and macOS
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX = "application/vnd.mlxctl.model."
CONFIG = _PREFIX + "config.v1+json"
HF_CONFIG = _PREFIX + "hf-config.v1+json"
WEIGHTS = _PREFIX + "weights.v1.safetensors"
WEIGHTS_INDEX = _PREFIX + "weights-index.v1+json"
TOKENIZER = _PREFIX + "tokenizer.v1"
GENERATION = _PREFIX + "generation.v1+json"
TEMPLATE = _PREFIX + "template.v1+jinja"
PARAMS = _PREFIX + "params.v1+json"
SYSTEM = _PREFIX + "system.v1+text"
MESSAGES = _PREFIX + "messages.v1+json"
ADAPTER = _PREFIX + "adapter.v1.safetensors"
ADAPTER_CONFIG = _PREFIX + "adapter-config.v1+json"
LICENSE = _PREFIX + "license.v1+text"
SPEC = _PREFIX + "spec.v1+text"
FILE = _PREFIX + "file.v1"

# File names of the layers the spec instructions write.
TEMPLATE_FILE, PARAMS_FILE, SYSTEM_FILE = "chat_template.jinja", "params.json", "system.txt"
MESSAGES_FILE, LICENSE_FILE, SPEC_FILE = "messages.json", "LICENSE", "ModelSpec"
ADAPTER_DIR = "adapter"

# What a model folder needs for mlx-lm (also the allow-list of Hugging Face pulls).
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "model*.safetensors",
    "model.safetensors.index.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "LICENSE*",
)
_BY_NAME = {
    "config.json": HF_CONFIG,
    "model.safetensors.index.json": WEIGHTS_INDEX,
    "generation_config.json": GENERATION,
    TEMPLATE_FILE: TEMPLATE,
    "chat_template.json": TEMPLATE,
    PARAMS_FILE: PARAMS,
    SYSTEM_FILE: SYSTEM,
    MESSAGES_FILE: MESSAGES,
    SPEC_FILE: SPEC,
    f"{ADAPTER_DIR}/adapters.safetensors": ADAPTER,
    f"{ADAPTER_DIR}/adapter_config.json": ADAPTER_CONFIG,
}
_TOKENIZER_GLOBS: tuple[str, ...] = ("tokenizer*", "special_tokens_map.json", "added_tokens.json")
_TOKENIZER_GLOBS += ("vocab.*", "merges.txt", "*.tiktoken")


def media_type_for(title: str) -> str:
    if title in _BY_NAME:
        return _BY_NAME[title]
    if fnmatch.fnmatch(title, "model*.safetensors"):
        return WEIGHTS
    if any(fnmatch.fnmatch(title, g) for g in _TOKENIZER_GLOBS):
        return TOKENIZER
    if title.upper().startswith("LICENSE"):
        return LICENSE
    return FILE


def check_title(title: object, what: str = "layer title") -> str:
    """A layer title is a relative path inside the model folder, never leaving it.

    Every segment is a plain name: not empty, `.` or `..`, no control character
    or backslash, at most 255 bytes (what any filesystem takes).
    """
    if not isinstance(title, str) or not title:
        raise InvalidInput(f"{what} {title!r} is not a file name")
    segments = title.split("/")
    if any(
        s in ("", ".", "..") or "\\" in s or len(s.encode()) > _MAX_SEGMENT or _CONTROL.search(s)
        for s in segments
    ):
        raise InvalidInput(f"{what} {title!r} is not a plain relative path")
    return title


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        data["size"] = self.size
        if self.annotations:
            data["annotations"] = dict(sorted(self.annotations.items()))
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Descriptor:
        if not isinstance(data, dict):
            raise InvalidInput(f"{where} is not an object")
        media, size, notes = data.get("mediaType"), data.get("size"), data.get("annotations", {})
        if not isinstance(media, str):
            raise InvalidInput(f"{where} has no mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"{where} has no valid size")
        if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
            raise InvalidInput(f"{where} has invalid annotations")
        return cls(media, check_digest(data.get("digest")), size, dict(notes))


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)

    def files(self) -> dict[str, Descriptor]:
        """Layer title → descriptor (the model folder's files)."""
        return {d.title: d for d in self.layers if d.title}

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config.to_json(),
            "layers": [d.to_json() for d in self.layers],
        }
        if self.annotations:
            data["annotations"] = dict(sorted(self.annotations.items()))
        return json.dumps(data, indent=2).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> Manifest:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInput(f"{where} is not JSON ({e})") from None
        if not isinstance(raw, dict) or raw.get("schemaVersion") != 2:
            raise InvalidInput(f"{where} is not a schemaVersion 2 manifest")
        if raw.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST:
            raise InvalidInput(
                f"{where} has media type {raw.get('mediaType')!r}, not an OCI image manifest",
                hint="multi-platform images and Docker manifests are not mlxctl models",
            )
        config = Descriptor.from_json(raw.get("config"), f"{where} config")
        if config.media_type != CONFIG:
            raise InvalidInput(
                f"{where} is not an mlxctl model (config media type {config.media_type!r})",
                hint="push models with `mlxctl push` to get a pullable manifest",
            )
        layers = raw.get("layers")
        if not isinstance(layers, list):
            raise InvalidInput(f"{where} has no layers list")
        if len(layers) > MAX_LAYERS:
            raise InvalidInput(f"{where} lists {len(layers)} layers (at most {MAX_LAYERS})")
        parsed = tuple(Descriptor.from_json(d, f"{where} layer {i}") for i, d in enumerate(layers))
        titles = [check_title(d.title) for d in parsed if d.title is not None]
        if len(set(titles)) != len(titles):
            raise InvalidInput(f"{where} names a file twice")
        notes = raw.get("annotations", {})
        return cls(config, parsed, dict(notes) if isinstance(notes, dict) else {})


@dataclass(frozen=True)
class ModelConfig:
    """The config blob: model facts and the settings a server needs to serve it.

    `chat_template` names the layer holding a template set by the spec (None:
    the tokenizer's own); `adapter` names the folder of a LoRA adapter layer.
    `base` is the model a spec started FROM; `origin` where the weights came
    from (`hf://org/repo@commit`, `oci://host/repo@digest`, a folder).
    """

    format: str = "mlx"
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    parameters: int | None = None
    quant_bits: int | None = None
    quant_group_size: int | None = None
    context_length: int | None = None
    dtype: str | None = None
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    adapter: str | None = None
    base: str | None = None
    origin: str | None = None

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {"mlxctl": 1}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return json.dumps(data, indent=2).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelConfig:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInput(f"model config blob is not JSON ({e})") from None
        if not isinstance(raw, dict):
            raise InvalidInput("model config blob is not a JSON object")
        known = {f.name for f in fields(cls)}
        # Unknown keys come from newer mlxctl versions: ignored, not fatal.
        values = {k: v for k, v in raw.items() if k in known}
        for key, value in values.items():
            _check_config_value(key, value)
        values["architectures"] = tuple(values.get("architectures") or ())
        return replace(cls(), **values)

    def check_paths(self, manifest: Manifest) -> ModelConfig:
        """The paths this config names point at the manifest's own files, nothing else.

        `chat_template` must be a layer title; `adapter` a plain relative folder
        holding layers. Called on every pulled config before anything is stored.
        """
        files = manifest.files()
        if self.chat_template is not None and self.chat_template not in files:
            raise InvalidInput(
                f"the model config names chat template {self.chat_template!r}, "
                "which is not one of the model's files"
            )
        if self.adapter is not None:
            folder = check_title(self.adapter, "adapter folder")
            if not any(title.startswith(folder + "/") for title in files):
                raise InvalidInput(
                    f"the model config names adapter folder {folder!r}, "
                    "which holds none of the model's files"
                )
        return self


_STRINGS = ("format",)
_INTS = ("parameters", "quant_bits", "quant_group_size", "context_length")


def _check_config_value(key: str, value: object) -> None:
    """Each config field has one JSON type (null allowed but for `format`)."""
    if key == "architectures":
        ok = value is None or (isinstance(value, list) and all(isinstance(a, str) for a in value))
    elif key in _INTS:
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    elif key in _STRINGS:
        ok = isinstance(value, str)
    else:
        ok = value is None or isinstance(value, str)
    if not ok or (isinstance(value, str) and _CONTROL.search(value)):
        raise InvalidInput(f"model config blob: field {key!r} has an invalid value {value!r}")
