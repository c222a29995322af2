"""`mlxctl create NAME -f ModelSpec`, and the spec printed back (`show --modelfile`).

A created model is its base's layers with the spec's changes on top: a layer
of the same file name replaces the base's, everything else is shared by
digest, so only new bytes are written. The spec itself is stored as a layer
(`ModelSpec`), which is what `--modelfile` prints; parsing that text gives the
same `ModelSpec` back. Models that were pulled or imported have no spec layer:
their spec is derived (`FROM <origin>` plus their serving settings).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from mlxctl import parsers
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.library.catalog import (
    check_name_free,
    config_for,
    copy_file,
    find,
    import_folder,
    layer,
    register,
    write_manifest,
)
from mlxctl.registry import ModelRecord, Registry
from mlxctl.store.content.blobs import remove_tree
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import (
    ADAPTER_DIR,
    HF_CONFIG,
    LICENSE_FILE,
    MESSAGES_FILE,
    PARAMS_FILE,
    SPEC_FILE,
    SYSTEM_FILE,
    TEMPLATE_FILE,
    WEIGHTS,
    WEIGHTS_INDEX,
    Descriptor,
    ModelConfig,
)
from mlxctl.store.content.modelspec import ModelSpec, format_spec, parse_spec
from mlxctl.store.content.tags import ModelName, parse_name
from mlxctl.store.local.confine import template_override
from mlxctl.store.local.hfcache import HF_SOURCE
from mlxctl.store.local.modelinfo import inspect_model_dir
from mlxctl.store.progress import NoProgress, Progress

_ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")


@dataclass(frozen=True)
class CreateReport:
    record: ModelRecord
    manifest_digest: str
    new_blobs: int  # blobs this create wrote; the rest were the base's


def create(
    registry: Registry,
    layout: StoreLayout,
    name: str,
    spec_path: Path,
    progress: Progress | None = None,
) -> CreateReport:
    """Build `name` from the ModelSpec file `spec_path`."""
    text = read_spec(spec_path)
    here = spec_path.parent
    return create_from_text(
        registry, layout, name, text, source=str(spec_path), here=here, progress=progress
    )


def create_from_text(
    registry: Registry,
    layout: StoreLayout,
    name: str,
    text: str,
    *,
    source: str = "ModelSpec",
    here: Path,
    progress: Progress | None = None,
) -> CreateReport:
    """Build `name` from the spec `text`; its FROM/ADAPTER folders are read relative to `here`.

    `source` names the spec in error messages; `progress` hears of each step.
    """
    progress = progress or NoProgress()
    target = parse_name(name)
    spec = parse_spec(text, source=source)
    _check_parsers(spec, source)
    check_name_free(registry, target)
    before = set(layout.blobs.digests())
    with layout.writing():
        progress.start("base", f"FROM {spec.base}", None)
        layers, config, base_dir = _base(registry, layout, spec.base, here, source)
        progress.finish("base", "stored")
        if spec.quantize is not None:
            progress.start("quantize", f"QUANTIZE {spec.quantize}", None)
            layers, config = _quantize(layout, spec, layers, config, base_dir)
            progress.finish("quantize", "quantized")
        layers, config = _apply(layout, spec, layers, config, here, base_dir)
        manifest, digest = write_manifest(layout, target, config, layers)
        record = register(registry, layout, target)
    new = [d for d in manifest.blobs() if d.digest not in before]
    return CreateReport(record, digest, len(new))


def read_spec(spec_path: Path) -> str:
    try:
        return spec_path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot read {spec_path}: {e.strerror or e}") from None


def _check_parsers(spec: ModelSpec, source: str) -> None:
    for kind, value, resolve in (
        ("tool", spec.tool_parser, parsers.tool_parser),
        ("reasoning", spec.reasoning_parser, parsers.reasoning_parser),
    ):
        try:
            if value:
                resolve(value)
        except InvalidInput as e:
            raise InvalidInput(
                f"{source}: PARSER {kind} {value!r} is not a parser mlxctl knows", hint=e.hint
            ) from None


def _base(
    registry: Registry, layout: StoreLayout, base: str, here: Path, source: str
) -> tuple[dict[str, Descriptor], ModelConfig, Path]:
    """The base's layers, config and a folder holding its files (for QUANTIZE)."""
    try:
        found = find(registry, layout, base)
    except NotFound:
        folder = (here / base).expanduser()
        if not folder.is_dir():
            raise NotFound(
                f"{source}: FROM {base}: no such model or folder",
                hint="name a model from `mlxctl list`, a store name, or a model folder",
            ) from None
        info = inspect_model_dir(folder.resolve())
        layers = import_folder(layout, folder, link=False)
        return layers, config_for(info, origin=str(folder.resolve())), folder
    if isinstance(found, ModelName):
        manifest, digest = layout.manifest(found)
        config = replace(layout.config(manifest), base=base)
        return dict(manifest.files()), config, layout.materialise(manifest, digest)
    folder = Path(found.cache_path)
    info = inspect_model_dir(folder)
    config = config_for(
        info,
        tool_call_parser=found.tool_call_parser,
        reasoning_parser=found.reasoning_parser,
        origin=f"hf://{found.repo_id}@{found.revision}" if found.repo_id else str(folder),
    )
    layers = import_folder(layout, folder, link=found.source == HF_SOURCE)
    return layers, replace(config, base=base), folder


def _quantize(
    layout: StoreLayout,
    spec: ModelSpec,
    layers: dict[str, Descriptor],
    config: ModelConfig,
    base_dir: Path,
) -> tuple[dict[str, Descriptor], ModelConfig]:
    """Re-quantize through mlx-lm; the new weights and config.json replace the base's."""
    assert spec.quantize is not None
    if config.quant_bits:
        raise InvalidInput(
            f"QUANTIZE {spec.quantize}: the base is already {config.quant_bits}-bit quantized",
            hint="start FROM an unquantized (float) model",
        )
    from mlxctl.engine import mlxlm  # imports MLX: only when a spec quantizes

    out = layout.root / f".tmp-quantize-{secrets.token_hex(4)}"
    try:
        mlxlm.quantize_dir(base_dir, out, bits=spec.quantize, group_size=spec.group_size or 64)
        kept = {t: d for t, d in layers.items() if d.media_type not in (WEIGHTS, WEIGHTS_INDEX)}
        kept.pop("config.json", None)
        # The temp files are hard-linked into blobs/, so deleting the folder copies nothing.
        new = import_folder(layout, out, link=True)
        kept.update(
            {t: d for t, d in new.items() if d.media_type in (WEIGHTS, WEIGHTS_INDEX, HF_CONFIG)}
        )
        info = inspect_model_dir(out)
    finally:
        remove_tree(out)
    config = replace(
        config,
        parameters=info.parameters,
        quant_bits=info.quant_bits,
        quant_group_size=info.quant_group_size,
        dtype=info.dtype,
    )
    return kept, config


def _apply(
    layout: StoreLayout,
    spec: ModelSpec,
    layers: dict[str, Descriptor],
    config: ModelConfig,
    here: Path,
    base_dir: Path,
) -> tuple[dict[str, Descriptor], ModelConfig]:
    layers = dict(layers)

    def put(title: str, data: bytes) -> None:
        blob = layout.blobs.write_bytes(data)
        layers[title] = layer(title, blob.digest, blob.size)

    def read_base(title: str) -> object:
        return json.loads((base_dir / title).read_bytes()) if title in layers else None

    if spec.template is not None:
        put(TEMPLATE_FILE, spec.template.encode())
        config = replace(config, chat_template=TEMPLATE_FILE)
    if spec.parameters:
        options = read_base(PARAMS_FILE)
        merged = dict(options) if isinstance(options, dict) else {}
        merged.update(spec.options())  # the spec's values (and its whole stop list) win
        put(PARAMS_FILE, json.dumps(merged, indent=2, sort_keys=True).encode() + b"\n")
    if spec.system is not None:
        put(SYSTEM_FILE, spec.system.encode())
    if spec.messages:
        messages = [{"role": role, "content": content} for role, content in spec.messages]
        put(MESSAGES_FILE, json.dumps(messages, indent=2).encode() + b"\n")
    if spec.licenses:
        put(LICENSE_FILE, "\n\n".join(spec.licenses).encode())
    if spec.adapter is not None:
        folder = (here / spec.adapter).expanduser()
        missing = [f for f in _ADAPTER_FILES if not (folder / f).is_file()]
        if missing:
            raise InvalidInput(
                f"ADAPTER {spec.adapter}: {folder} lacks {', '.join(missing)}",
                hint="point ADAPTER at the folder mlx_lm.lora wrote (--adapter-path)",
            )
        for file in _ADAPTER_FILES:
            blob = copy_file(layout, folder / file)
            layers[f"{ADAPTER_DIR}/{file}"] = layer(f"{ADAPTER_DIR}/{file}", blob.digest, blob.size)
        config = replace(config, adapter=ADAPTER_DIR)
    config = replace(
        config,
        tool_call_parser=spec.tool_parser or config.tool_call_parser,
        reasoning_parser=spec.reasoning_parser or config.reasoning_parser,
    )
    put(SPEC_FILE, format_spec(spec).encode())
    return layers, config


def modelfile(registry: Registry, layout: StoreLayout, reference: str) -> str:
    """The spec of a model: the one it was created from, else one derived from it."""
    found = find(registry, layout, reference)
    if isinstance(found, ModelName):
        manifest, _ = layout.manifest(found)
        files = manifest.files()
        if SPEC_FILE in files:
            return layout.read_blob(files[SPEC_FILE]).decode()
        config = layout.config(manifest)
        spec = ModelSpec(
            base=config.origin or str(found),
            tool_parser=config.tool_call_parser,
            reasoning_parser=config.reasoning_parser,
        )
        if config.chat_template and config.chat_template in files:
            spec = replace(spec, template=layout.read_blob(files[config.chat_template]).decode())
        return format_spec(spec)
    record = found
    spec = ModelSpec(
        base=f"hf://{record.repo_id}@{record.revision}" if record.repo_id else record.cache_path,
        tool_parser=record.tool_call_parser,
        reasoning_parser=record.reasoning_parser,
    )
    try:
        override = template_override(record, layout.root)
    except InvalidInput:
        override = None  # a file outside the store is never read, nor shown
    if override is not None and override.is_file():
        spec = replace(spec, template=override.read_text(encoding="utf-8"))
    return format_spec(spec)
