"""Pull, push and registry logins, ending in registered store models.

`pull` takes `org/repo[@rev]` or `hf://...` (the Hugging Face hub, through its
cache) and `oci://host/repo:tag` or `host/repo:tag` (any OCI registry). Both
end the same way: blobs stored, tag written, then the registry row, with the
store's writer lock held from first blob to row (so `prune` never sees the
tag without its row). A pull into a name the registry gives to another model,
or to a store model from another source (unless `replace`), stops before
downloading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlxctl.errors import InvalidInput
from mlxctl.library.catalog import (
    check_name_free,
    config_for,
    import_folder,
    register,
    take_in,
    write_manifest,
)
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.record import slugify
from mlxctl.settings import Settings
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.tags import DEFAULT_TAG, ModelName, parse_name
from mlxctl.store.local.hfpull import (
    HfReference,
    download_snapshot,
    looks_like_hf,
    parse_hf_reference,
)
from mlxctl.store.local.modelinfo import inspect_model_dir
from mlxctl.store.oci import transfer as oci_transfer
from mlxctl.store.oci.auth import Credentials, CredentialStore, find_credentials, normalize_host
from mlxctl.store.oci.client import DEFAULT_CHUNK, OciReference, RegistryClient, parse_reference
from mlxctl.store.progress import Progress


@dataclass
class PullResult:
    record: ModelRecord
    name: ModelName
    source: str
    manifest_digest: str
    downloaded: list[str] = field(default_factory=list)  # digests fetched (OCI pulls)
    reused: list[str] = field(default_factory=list)  # digests the store already had
    resumed: dict[str, int] = field(default_factory=dict)  # digest → bytes a partial file held
    bytes_downloaded: int = 0


def credentials_path(settings: Settings) -> Path:
    return settings.home / "auth.json"


@dataclass(frozen=True)
class PullTarget:
    """Where a reference would land: the store name and the repo id its row gets."""

    name: ModelName
    repo_id: str
    hf: HfReference | None = None
    oci: OciReference | None = None


def pull_target(reference: str, name: str | None = None) -> PullTarget:
    """Parse `reference` (Hugging Face or OCI) and pick its store name; no I/O."""
    if looks_like_hf(reference):
        hf = parse_hf_reference(reference)
        tag = DEFAULT_TAG if hf.revision in (None, "main") else _tag_from(hf.revision or "")
        target = parse_name(name) if name else ModelName(slugify(hf.repo_id)[:64], tag)
        return PullTarget(target, hf.repo_id, hf=hf)
    oci = parse_reference(reference)
    target = parse_name(name) if name else _default_name(oci)
    return PullTarget(target, f"{oci.host}/{oci.repository}", oci=oci)


def check_pull(
    registry: Registry, reference: str, *, name: str | None = None, replace: bool = False
) -> PullTarget:
    """What a pull would take, refused (Conflict) when the name belongs to another model."""
    target = pull_target(reference, name)
    _check_free(registry, target, replace)
    return target


def _check_free(registry: Registry, target: PullTarget, replace: bool) -> None:
    check_name_free(
        registry, target.name, repo_id=target.repo_id, pulled_from=target.repo_id, replace=replace
    )


def pull(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    reference: str,
    *,
    name: str | None = None,
    insecure: bool = False,
    replace: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    """Pull `reference` into the store and register it; `replace` lets it take the
    name of a store model that came from another source."""
    target = check_pull(registry, reference, name=name, replace=replace)
    if target.hf is not None:
        return _pull_hf(registry, layout, settings, target, target.hf, replace, progress)
    assert target.oci is not None
    return _pull_oci(registry, layout, settings, target, target.oci, insecure, replace, progress)


def _pull_hf(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    target: PullTarget,
    ref: HfReference,
    replace: bool,
    progress: Progress | None,
) -> PullResult:
    snapshot = download_snapshot(ref, settings.hf_cache_dir, progress=progress)
    try:
        info = inspect_model_dir(snapshot)
    except InvalidInput as e:
        raise InvalidInput(
            f"{ref} is not an MLX model: {e.message.removeprefix(f'{snapshot}: ')}",
            hint=e.hint or "pick an MLX conversion (e.g. from mlx-community) or run mlx_lm.convert",
        ) from None
    before = set(layout.blobs.digests())
    with layout.writing():
        layers = import_folder(layout, snapshot, link=True)
        config = config_for(info, origin=f"hf://{ref.repo_id}@{snapshot.name}")
        _check_free(registry, target, replace)  # another pull may have taken the name meanwhile
        manifest, digest = write_manifest(layout, target.name, config, layers)
        record = register(registry, layout, target.name, repo_id=ref.repo_id)
    blobs = [d.digest for d in manifest.blobs()]
    return PullResult(
        record=record,
        name=target.name,
        source=str(ref),
        manifest_digest=digest,
        downloaded=[d for d in blobs if d not in before],
        reused=[d for d in blobs if d in before],
    )


def _pull_oci(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    target: PullTarget,
    ref: OciReference,
    insecure: bool,
    replace: bool,
    progress: Progress | None,
) -> PullResult:
    def before_tag() -> None:  # another pull may have taken the name meanwhile
        _check_free(registry, target, replace)

    with _client(settings, ref.host, insecure) as client, layout.writing():
        report = oci_transfer.pull(
            layout, ref, target.name, client, progress, before_tag=before_tag
        )
        record = register(registry, layout, target.name, repo_id=target.repo_id)
    return PullResult(
        record=record,
        name=target.name,
        source=str(ref),
        manifest_digest=report.manifest_digest,
        downloaded=report.downloaded,
        reused=report.reused,
        resumed=report.resumed,
        bytes_downloaded=report.bytes_downloaded,
    )


def push(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    model: str,
    target: str,
    *,
    insecure: bool = False,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> oci_transfer.PushReport:
    ref = parse_reference(target)
    name = take_in(registry, layout, model)
    with _client(settings, ref.host, insecure, chunk_size) as client:
        return oci_transfer.push(layout, name, ref, client, progress)


def login(
    settings: Settings, registry_host: str, username: str, password: str, *, insecure: bool = False
) -> str:
    """Check the credentials against the registry, then save them; the host saved."""
    if not username or not password:
        raise InvalidInput("login needs a username and a password")
    host = normalize_host(registry_host)
    credentials = Credentials(username, password)
    with RegistryClient(host, credentials=credentials, insecure=insecure) as client:
        client.ping()
    CredentialStore(credentials_path(settings)).save(host, credentials)
    return host


def logout(settings: Settings, registry_host: str) -> bool:
    return CredentialStore(credentials_path(settings)).remove(registry_host)


def _client(
    settings: Settings, host: str, insecure: bool, chunk_size: int = DEFAULT_CHUNK
) -> RegistryClient:
    credentials = find_credentials(host, CredentialStore(credentials_path(settings)))
    return RegistryClient(host, credentials=credentials, insecure=insecure, chunk_size=chunk_size)


def _default_name(ref: OciReference) -> ModelName:
    base = slugify(ref.repository.rsplit("/", 1)[-1])[:64]
    if ref.tag and ref.digest is None:
        return ModelName(base, _tag_from(ref.tag))
    return ModelName(base, "sha256-" + (ref.digest or "").removeprefix("sha256:")[:12])


def _tag_from(text: str) -> str:
    tag = slugify(text).replace(":", "-")[:63]
    return tag if tag and tag[0] not in ".-" else DEFAULT_TAG
