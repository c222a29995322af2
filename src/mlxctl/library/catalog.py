"""Store models as registered models: importing folders, tagging, registering.

A store model is registered with `source="store"` and `cache_path` = its model
folder (`store/models/sha256-<manifest>/`, links into the blobs), so everything
that loads registered models loads it unchanged. The registry row is written
last, after blobs, tag and folder exist: a crash before it leaves an
unregistered tag (visible to `prune`'s accounting), never a row without files.

The row carries what the manifest says about serving: `chat_template` (the
template layer's path), `tool_call_parser`, `reasoning_parser`, and in `extra`
the sampling `options`, `system` prompt, few-shot `messages`, `adapter_path`
and `store` = {name, root, manifest}.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlxctl.errors import Conflict, InvalidInput, NotFound
from mlxctl.registry import ModelRecord, Registry
from mlxctl.settings import Settings
from mlxctl.store.content.blobs import Blob
from mlxctl.store.content.layout import STORE_SOURCE, StoreLayout
from mlxctl.store.content.manifest import (
    CONFIG,
    MESSAGES_FILE,
    MODEL_FILE_PATTERNS,
    PARAMS_FILE,
    SYSTEM_FILE,
    TEMPLATE_FILE,
    TITLE,
    Descriptor,
    Manifest,
    ModelConfig,
    media_type_for,
)
from mlxctl.store.content.tags import ModelName, parse_name
from mlxctl.store.local.confine import template_override
from mlxctl.store.local.hfcache import HF_SOURCE
from mlxctl.store.local.modelinfo import FolderInfo, inspect_model_dir, to_record


def open_store(settings: Settings | None = None) -> StoreLayout:
    return StoreLayout((settings or Settings.from_env()).store_dir)


# Building manifests --------------------------------------------------------


def import_folder(layout: StoreLayout, folder: Path, *, link: bool) -> dict[str, Descriptor]:
    """The model files of `folder` as stored layers.

    With `link`, files are hard-linked (no bytes copied): only for files nobody
    rewrites in place, the HF cache's and our own temp files. Folders a user
    keeps are copied, so editing them later cannot damage a blob. Only the
    files mlx-lm uses (`MODEL_FILE_PATTERNS`) are taken; call while holding
    `layout.writing()`.
    """
    layers: dict[str, Descriptor] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not any(
            fnmatch.fnmatch(path.name, p) for p in MODEL_FILE_PATTERNS
        ):
            continue
        # A link to one of our blobs (uploaded files for /api/create) is never rewritten.
        is_blob = path.resolve().parent == layout.blobs.root.resolve()
        blob = layout.blobs.import_file(path) if link or is_blob else copy_file(layout, path)
        layers[path.name] = layer(path.name, blob.digest, blob.size)
    return layers


def copy_file(layout: StoreLayout, path: Path) -> Blob:
    """Store a copy of `path` (hashed while copying)."""
    with path.open("rb") as f:
        return layout.blobs.write(iter(lambda: f.read(1 << 20), b""))


def layer(title: str, digest: str, size: int) -> Descriptor:
    return Descriptor(media_type_for(title), digest, size, {TITLE: title})


def config_for(info: FolderInfo, **settings: Any) -> ModelConfig:
    """The config blob's model facts from an inspected folder, plus `settings`."""
    return ModelConfig(**info.facts, architectures=info.architectures, dtype=info.dtype, **settings)


def write_manifest(
    layout: StoreLayout, name: ModelName, config: ModelConfig, layers: dict[str, Descriptor]
) -> tuple[Manifest, str]:
    """Store the config blob, tag `name` with the manifest; layers sorted by file name."""
    blob = layout.blobs.write_bytes(config.to_bytes())
    config_descriptor = Descriptor(CONFIG, blob.digest, blob.size)
    manifest = Manifest(config_descriptor, tuple(layers[t] for t in sorted(layers)))
    return manifest, layout.put(name, manifest)


# Registering ------------------------------------------------------------------


def check_name_free(
    registry: Registry,
    name: ModelName,
    *,
    repo_id: str | None = None,
    pulled_from: str | None = None,
    replace: bool = False,
) -> None:
    """Refuse a name taken by a model outside the store (an HF-cache entry of the same
    repo may be replaced: pulling a model `init` registered moves it into the store).

    A pull (`pulled_from`: the repo id it registers) also never replaces a store
    model that came from anywhere else (another registry, org or repo, or a local
    create) unless `replace`: a re-pull of the same source updates it.
    """
    existing = registry.get(name.slug)
    if existing is None:
        return
    if existing.source == STORE_SOURCE:
        if pulled_from is None or replace or existing.repo_id == pulled_from:
            return
        came_from = existing.repo_id or "a local create or copy"
        raise Conflict(
            f"the pull would replace '{name.slug}', which came from {came_from}, "
            f"with {pulled_from}; nothing was pulled",
            hint=f"pull it under another name (--name {name.name}-2:{name.tag}), or replace "
            'it on purpose (`mlxctl pull --force`, or "replace": true on /api/pull)',
        )
    if repo_id is not None and existing.source == HF_SOURCE and existing.repo_id == repo_id:
        return
    raise Conflict(
        f"'{name.slug}' is already registered ({existing.source}: {existing.cache_path})",
        hint=f"choose another name (e.g. {name.name}-2:{name.tag}), or `mlxctl rm {name.slug}`",
    )


def register(
    registry: Registry,
    layout: StoreLayout,
    name: ModelName,
    *,
    repo_id: str | None = None,
) -> ModelRecord:
    """Materialise `name`'s folder and write its registry row (replacing an older one)."""
    manifest, digest = layout.manifest(name)
    config = layout.config(manifest).check_paths(manifest)
    with layout.writing():
        folder = layout.materialise(manifest, digest)
    info = inspect_model_dir(folder)
    record = to_record(
        info,
        slug=name.slug,
        cache_path=folder,
        repo_id=repo_id,
        model_id=str(name),
        revision=digest,
        source=STORE_SOURCE,
    )
    files = manifest.files()
    extra = {
        **record.extra,
        "store": {"name": str(name), "root": str(layout.root), "manifest": digest},
        "origin": config.origin,
        "base": config.base,
        "options": _json_layer(layout, files.get(PARAMS_FILE)) or {},
        "system": _text_layer(layout, files.get(SYSTEM_FILE)),
        "messages": _json_layer(layout, files.get(MESSAGES_FILE)) or [],
        "adapter_path": str(folder / config.adapter) if config.adapter else None,
    }
    record = replace(
        record,
        chat_template=str(folder / config.chat_template) if config.chat_template else None,
        tool_call_parser=config.tool_call_parser,
        reasoning_parser=config.reasoning_parser,
        extra=extra,
    )
    existing = registry.get(name.slug)
    if existing is not None:
        check_name_free(registry, name, repo_id=repo_id)
        record = replace(record, port=existing.port)  # a re-pull keeps the slot it had
    registry.add_many([record])
    return record


def _json_layer(layout: StoreLayout, descriptor: Descriptor | None) -> Any:
    if descriptor is None:
        return None
    try:
        return json.loads(layout.read_blob(descriptor))
    except ValueError:
        raise InvalidInput(f"layer {descriptor.title} is not valid JSON") from None


def _text_layer(layout: StoreLayout, descriptor: Descriptor | None) -> str | None:
    return layout.read_blob(descriptor).decode() if descriptor is not None else None


# Finding and copying --------------------------------------------------------


def store_name_of(record: ModelRecord) -> ModelName | None:
    store = record.extra.get("store")
    if record.source != STORE_SOURCE or not isinstance(store, dict):
        return None
    return parse_name(str(store.get("name", "")))


def find(
    registry: Registry, layout: StoreLayout, reference: str, *, exact: bool = False
) -> ModelName | ModelRecord:
    """A store tag by `name[:tag]`, else the registered model `reference` names
    (by prefix too, unless `exact`: what push and copying over a name use).

    Returns the ModelName for store models and the ModelRecord for others.
    """
    try:
        name = parse_name(reference)
    except InvalidInput:
        name = None
    if name is not None and layout.tags.read(name) is not None:
        return name
    record = registry.resolve_exact(reference) if exact else registry.resolve(reference)
    return store_name_of(record) or record


def require_store_model(
    registry: Registry, layout: StoreLayout, reference: str, *, exact: bool = False
) -> ModelName:
    found = find(registry, layout, reference, exact=exact)
    if isinstance(found, ModelName):
        return found
    raise InvalidInput(
        f"'{found.slug}' is not in the store (source {found.source})",
        hint=f"add it to the store first: mlxctl cp {found.slug} {found.slug}-store",
    )


def take_in(registry: Registry, layout: StoreLayout, reference: str) -> ModelName:
    """The store name of `reference` (named exactly: push uses it); a Hugging Face cache
    model is moved into the store under its own slug first (hard links, no bytes copied),
    as a pull of it would."""
    found = find(registry, layout, reference, exact=True)
    if isinstance(found, ModelName):
        return found
    if found.source != HF_SOURCE:
        return require_store_model(registry, layout, reference, exact=True)  # raises
    try:
        name = parse_name(found.slug)
    except InvalidInput:
        raise InvalidInput(
            f"'{found.slug}' is not a valid store name",
            hint=f"copy it into the store under one first: mlxctl cp {found.slug} NAME",
        ) from None
    check_name_free(registry, name, repo_id=found.repo_id)
    _import_record(registry, layout, found, name)
    return name


def copy(registry: Registry, layout: StoreLayout, source: str, target: str) -> ModelRecord:
    """`mlxctl cp`: a new tag for a store model, or a registered folder imported by links.

    Copying over an existing name replaces that model, so `source` must then be
    named exactly (a prefix could pick another model than meant).
    """
    new = parse_name(target)
    check_name_free(registry, new)
    taken = registry.get(new.slug) is not None or layout.tags.read(new) is not None
    found = find(registry, layout, source, exact=taken)
    if isinstance(found, ModelName):
        data = layout.tags.read(found)
        if data is None:
            raise NotFound(f"model '{found}' is not in the store")
        source_record = registry.get(found.slug)
        repo_id = source_record.repo_id if source_record is not None else None
        with layout.writing():  # held until the row exists: prune never sees a bare tag
            layout.put_bytes(new, data)
            return register(registry, layout, new, repo_id=repo_id)
    return _import_record(registry, layout, found, new)


def _import_record(
    registry: Registry, layout: StoreLayout, found: ModelRecord, new: ModelName
) -> ModelRecord:
    """A registered folder as the store model `new`: linked from the HF cache, else copied."""
    folder = Path(found.cache_path)
    info = inspect_model_dir(folder)
    origin = (
        f"hf://{found.repo_id}@{found.revision}"
        if found.source == HF_SOURCE and found.repo_id
        else str(folder)
    )
    template = template_override(found, layout.root)  # never a file outside the store
    with layout.writing():
        layers = import_folder(layout, folder, link=found.source == HF_SOURCE)
        if template is not None:  # the registry's template override travels with the model
            blob = copy_file(layout, template)
            layers[TEMPLATE_FILE] = layer(TEMPLATE_FILE, blob.digest, blob.size)
        config = config_for(
            info,
            chat_template=TEMPLATE_FILE if template is not None else None,
            tool_call_parser=found.tool_call_parser,
            reasoning_parser=found.reasoning_parser,
            origin=origin,
        )
        write_manifest(layout, new, config, layers)
        return register(registry, layout, new, repo_id=found.repo_id)


def orphan_tags(registry: Registry, layout: StoreLayout) -> tuple[ModelName, ...]:
    """Tags no registry row names: left by a crash between tagging and registering
    (or between unregistering and untagging). The registry is the truth: they go."""
    registered = {str(n) for n in map(store_name_of, registry.list()) if n is not None}
    return tuple(n for n in layout.tags.names() if str(n) not in registered)


def mark_integrity(registry: Registry, checked: dict[str, list[str]]) -> list[str]:
    """Record `verify` results on store rows: `extra["store_damaged"]` lists bad files.

    `checked` maps each verified store name (`name:tag`) to its damaged file
    titles (empty: intact); other rows are left alone. Returns the slugs whose
    mark changed.
    """
    changed: list[ModelRecord] = []
    for record in registry.list():
        name = store_name_of(record)
        if name is None or str(name) not in checked:
            continue
        files = checked[str(name)]
        if record.extra.get("store_damaged", []) != files:
            extra = {k: v for k, v in record.extra.items() if k != "store_damaged"}
            if files:
                extra["store_damaged"] = files
            changed.append(replace(record, extra=extra))
    if changed:
        registry.add_many(changed)
    return [r.slug for r in changed]
