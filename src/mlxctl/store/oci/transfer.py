"""Moving a tagged model between the store and an OCI registry.

`push` sends what the registry lacks: a HEAD per blob skips those it has, a
cross-repository mount reuses a blob it holds in another repository we pushed
to or pulled from, anything else is uploaded; the manifest goes last, so a
registry never serves a manifest whose blobs are missing. `pull` fetches and
checks the manifest and its config, downloads only the blobs the store lacks
(resuming partial ones), builds and inspects the model folder, and tags the
model last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlxctl import parsers
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import Manifest, ModelConfig
from mlxctl.store.content.tags import ModelName
from mlxctl.store.local.modelinfo import inspect_model_dir
from mlxctl.store.oci.client import OciReference, RegistryClient
from mlxctl.store.progress import NoProgress, Progress


@dataclass
class PushReport:
    target: OciReference
    manifest_digest: str
    uploaded: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


@dataclass
class PullReport:
    source: OciReference
    name: ModelName
    manifest: Manifest
    manifest_digest: str
    downloaded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)  # digest → bytes already there
    bytes_downloaded: int = 0


def push(
    layout: StoreLayout,
    name: ModelName,
    target: OciReference,
    client: RegistryClient,
    progress: Progress | None = None,
) -> PushReport:
    progress = progress or NoProgress()
    data = layout.tags.read(name)
    manifest, digest = layout.manifest(name)
    assert data is not None  # layout.manifest raised NotFound otherwise
    missing = [d for d in manifest.blobs() if not layout.blobs.has(d.digest, d.size)]
    if missing:
        raise NotFound(
            f"'{name}' is incomplete: {len(missing)} blob(s) missing from the store",
            hint="pull the model again, or run `mlxctl store verify` to see what is damaged",
        )
    repo = target.repository
    report = PushReport(target=target, manifest_digest=digest)
    for descriptor in manifest.blobs():
        key, label = descriptor.digest, descriptor.title or "config"
        progress.start(key, label, descriptor.size)
        if client.blob_exists(repo, descriptor.digest):
            report.skipped.append(descriptor.digest)
            progress.finish(key, "exists")
            continue
        location = None
        sources = [r for r in layout.remote_repos(client.host, descriptor.digest) if r != repo]
        if sources:
            # A refused mount opens an ordinary upload session: use it rather than start another.
            location = client.mount(repo, descriptor.digest, sources[0])
            if location is None:
                report.mounted.append(descriptor.digest)
                progress.finish(key, f"mounted from {sources[0]}")
                continue
        client.upload(
            repo,
            layout.blobs.path(descriptor.digest),
            descriptor.digest,
            descriptor.size,
            location=location,
            progress=progress,
            key=key,
        )
        report.uploaded.append(descriptor.digest)
        report.bytes_uploaded += descriptor.size
        progress.finish(key, "uploaded")
    reference = target.tag if target.digest is None and target.tag else digest
    client.put_manifest(repo, reference, data)
    layout.remember_remote(client.host, repo, [d.digest for d in manifest.blobs()])
    return report


def pull(
    layout: StoreLayout,
    source: OciReference,
    name: ModelName,
    client: RegistryClient,
    progress: Progress | None = None,
    *,
    before_tag: Callable[[], None] | None = None,
) -> PullReport:
    """Check, download what is missing, inspect, then tag `name`; the caller holds
    `layout.writing()`. `before_tag` runs last, before the tag is written.

    A registry is not trusted: the manifest and its config blob pass every check
    (layer titles, the paths and parser names the config gives) before anything
    is stored, so a hostile manifest leaves no blob, tag or folder. The model
    folder is built and inspected before tagging, so a failed pull leaves no tag.
    """
    progress = progress or NoProgress()
    data, digest = client.get_manifest(source)
    where = f"manifest of {source}"
    manifest = Manifest.from_bytes(data, where=where)
    config_bytes = client.get_config(source.repository, manifest.config)
    try:
        config = ModelConfig.from_bytes(config_bytes).check_paths(manifest)
    except InvalidInput as e:
        raise InvalidInput(f"{where}: {e.message}; nothing was stored", hint=e.hint) from None
    parsers.check(config.tool_call_parser, config.reasoning_parser, where)
    report = PullReport(source=source, name=name, manifest=manifest, manifest_digest=digest)
    for descriptor in manifest.layers:
        key, label = descriptor.digest, descriptor.title or "layer"
        if layout.blobs.has(descriptor.digest, descriptor.size):
            progress.start(key, label, descriptor.size, descriptor.size)
            progress.finish(key, "already stored")
            report.reused.append(descriptor.digest)
            continue
        _, resumed = client.download(
            source.repository, descriptor, layout.blobs, progress=progress, key=key
        )
        if resumed:
            report.resumed[descriptor.digest] = resumed
        report.downloaded.append(descriptor.digest)
        report.bytes_downloaded += descriptor.size - resumed
        progress.finish(key, f"resumed at {resumed} bytes" if resumed else "downloaded")
    config_digest = manifest.config.digest
    (report.reused if layout.blobs.has(config_digest) else report.downloaded).append(config_digest)
    layout.blobs.write([config_bytes], expected=config_digest)
    folder = layout.materialise(manifest, digest)
    try:
        inspect_model_dir(folder)
    except InvalidInput as e:
        raise InvalidInput(
            f"{source} is not a model mlxctl can serve: {e.message}; it was not tagged",
            hint=e.hint,
        ) from None
    if before_tag is not None:
        before_tag()
    layout.put_bytes(name, data)
    layout.remember_remote(client.host, source.repository, [d.digest for d in manifest.blobs()])
    return report
