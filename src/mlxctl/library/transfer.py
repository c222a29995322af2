"""Pull, push and registry logins, ending in registered store models.

`pull` takes `org/repo[@rev]` or `hf://...` (the Hugging Face hub, through its
cache) and `oci://host/repo:tag` or `host/repo:tag` (any OCI registry). Both
end the same way: blobs stored, tag written, then the registry row. A pull
into a name the registry gives to another model stops before downloading.
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
from mlxctl.store import transfer as oci_transfer
from mlxctl.store.auth import Credentials, CredentialStore, find_credentials, normalize_host
from mlxctl.store.hfpull import download_snapshot, looks_like_hf, parse_hf_reference
from mlxctl.store.layout import StoreLayout
from mlxctl.store.modelinfo import inspect_model_dir
from mlxctl.store.oci import DEFAULT_CHUNK, OciReference, RegistryClient, parse_reference
from mlxctl.store.progress import Progress
from mlxctl.store.tags import DEFAULT_TAG, ModelName, parse_name


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


def pull(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    reference: str,
    *,
    name: str | None = None,
    insecure: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    if looks_like_hf(reference):
        return _pull_hf(registry, layout, settings, reference, name, progress)
    return _pull_oci(registry, layout, settings, reference, name, insecure, progress)


def _pull_hf(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    reference: str,
    name: str | None,
    progress: Progress | None,
) -> PullResult:
    ref = parse_hf_reference(reference)
    tag = DEFAULT_TAG if ref.revision in (None, "main") else _tag_from(ref.revision or "")
    target = parse_name(name) if name else ModelName(slugify(ref.repo_id)[:64], tag)
    check_name_free(registry, target, repo_id=ref.repo_id)
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
        manifest, digest = write_manifest(layout, target, config, layers)
    record = register(registry, layout, target, repo_id=ref.repo_id)
    blobs = [d.digest for d in manifest.blobs()]
    return PullResult(
        record=record,
        name=target,
        source=str(ref),
        manifest_digest=digest,
        downloaded=[d for d in blobs if d not in before],
        reused=[d for d in blobs if d in before],
    )


def _pull_oci(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    reference: str,
    name: str | None,
    insecure: bool,
    progress: Progress | None,
) -> PullResult:
    ref = parse_reference(reference)
    target = parse_name(name) if name else _default_name(ref)
    check_name_free(registry, target)
    with _client(settings, ref.host, insecure) as client, layout.writing():
        report = oci_transfer.pull(layout, ref, target, client, progress)
    record = register(registry, layout, target, repo_id=f"{ref.host}/{ref.repository}")
    return PullResult(
        record=record,
        name=target,
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
