"""Push and pull through a real OCI registry (Debian's docker-registry, distribution 2.8)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlxctl.engine import mlxlm
from mlxctl.errors import InvalidInput, Unavailable
from mlxctl.library import build, catalog, inventory, transfer
from mlxctl.registry import Registry
from mlxctl.settings import Settings
from mlxctl.store.content.blobs import CorruptBlob
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import WEIGHTS
from mlxctl.store.content.tags import parse_name
from tests.store.fixtures import REGISTRY_PASSWORD, REGISTRY_USER
from tests.store.registry_server import (
    SKIP_REASON,
    RecordingProxy,
    RegistryServer,
    TokenServer,
    registry_binary,
)


@pytest.fixture
def layout(settings: Settings) -> StoreLayout:
    return catalog.open_store(settings)


@pytest.fixture
def stored(registry: Registry, layout: StoreLayout, tiny_model: Path) -> dict[str, bytes]:
    """`tiny` in the store (copied from the factory folder); its blobs by digest."""
    inventory.register_path(registry, tiny_model, slug="tiny-src")
    catalog.copy(registry, layout, "tiny-src", "tiny")
    manifest, _ = layout.manifest(parse_name("tiny"))
    return {d.digest: layout.blobs.path(d.digest).read_bytes() for d in manifest.blobs()}


def weights_digest(layout: StoreLayout, name: str) -> str:
    manifest, _ = layout.manifest(parse_name(name))
    return next(d.digest for d in manifest.layers if d.media_type == WEIGHTS)


def remove(registry: Registry, slug: str) -> int:
    record, plan = inventory.plan_rm(registry, slug, Settings.from_env())
    return inventory.rm(registry, record, plan)


def repo() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


def test_push_remove_pull_gives_identical_blobs_that_load(
    oci_registry: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
) -> None:
    target = f"{oci_registry.host}/{repo()}:v1"
    first = transfer.push(registry, layout, settings, "tiny", target)
    assert sorted(first.uploaded) == sorted(stored) and not first.skipped
    second = transfer.push(registry, layout, settings, "tiny", target)
    assert second.uploaded == [] and second.mounted == [] and second.bytes_uploaded == 0
    assert sorted(second.skipped) == sorted(stored)

    assert remove(registry, "tiny") == sum(len(b) for b in stored.values())
    assert not any(layout.blobs.has(d) for d in stored)

    pulled = transfer.pull(registry, layout, settings, f"oci://{target}", name="tiny")
    assert sorted(pulled.downloaded) == sorted(stored) and pulled.reused == []
    assert pulled.manifest_digest == first.manifest_digest
    for digest, data in stored.items():
        assert layout.blobs.path(digest).read_bytes() == data
    record = registry.get("tiny")
    assert record is not None and record.source == "store"
    assert record.repo_id == f"{oci_registry.host}/{target.split('/', 1)[1].split(':')[0]}"
    model, tokenizer = mlxlm.load(record.cache_path)
    tokens = list(mlxlm.stream_generate(model, tokenizer, "Hello", max_tokens=3))
    assert 1 <= len(tokens) <= 3


def test_chunked_upload_then_cross_repository_mount(
    oci_registry: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
) -> None:
    proxy = RecordingProxy(oci_registry.host)
    try:
        first_repo, second_repo = repo(), repo()
        report = transfer.push(
            registry,
            layout,
            settings,
            "tiny",
            f"{proxy.host}/{first_repo}:v1",
            chunk_size=256 << 10,
        )
        assert len(report.uploaded) == len(stored)
        patches = [s for s in proxy.seen if s.method == "PATCH"]
        assert len(patches) >= 4  # the ~1 MB weights went up in 256 KiB chunks
        mounted = transfer.push(
            registry, layout, settings, "tiny", f"{proxy.host}/{second_repo}:v1"
        )
        assert sorted(mounted.mounted) == sorted(stored) and mounted.uploaded == []
        assert any(
            "mount=" in s.path and first_repo.replace("/", "%2F") in s.path for s in proxy.seen
        )
    finally:
        proxy.stop()
    # The mounted copy is a complete model.
    remove(registry, "tiny")
    pulled = transfer.pull(registry, layout, settings, f"{oci_registry.host}/{second_repo}:v1")
    assert pulled.record.slug == second_repo.rsplit("/", 1)[1] + ":v1"


def test_damaged_registry_blob_is_refused_and_nothing_is_stored(
    oci_registry: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
    tmp_path: Path,
) -> None:
    spec = tmp_path / "ModelSpec"
    spec.write_text(f"FROM tiny\nLICENSE unique license {uuid.uuid4()}\n")
    build.create(registry, layout, "licensed", spec)
    manifest, _ = layout.manifest(parse_name("licensed"))
    license_layer = manifest.files()["LICENSE"]
    target = f"{oci_registry.host}/{repo()}:v1"
    transfer.push(registry, layout, settings, "licensed", target)
    remove(registry, "licensed")
    assert not layout.blobs.has(license_layer.digest)

    data_file = oci_registry.blob_data_path(license_layer.digest)
    data = bytearray(data_file.read_bytes())
    data[0] ^= 0xFF  # same size, wrong bytes: only the digest can tell
    data_file.write_bytes(bytes(data))

    with pytest.raises(CorruptBlob, match="failed verification"):
        transfer.pull(registry, layout, settings, target, name="licensed")
    assert not layout.blobs.has(license_layer.digest)
    assert not any(p.name.startswith(".partial-") for p in layout.blobs.root.iterdir())
    assert layout.tags.read(parse_name("licensed")) is None
    assert registry.get("licensed") is None


def test_killed_pull_leaves_no_blob_and_the_next_pull_resumes_with_range(
    oci_registry: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
) -> None:
    weights = weights_digest(layout, "tiny")
    size = len(stored[weights])
    target = f"{repo()}:v1"
    transfer.push(registry, layout, settings, "tiny", f"{oci_registry.host}/{target}")
    remove(registry, "tiny")
    partial = layout.blobs.root / (".partial-sha256-" + weights.removeprefix("sha256:"))

    proxy = RecordingProxy(oci_registry.host, bytes_per_second=300_000)
    try:
        code = "import sys; from mlxctl.cli.store import pull; pull.main(sys.argv[1:])"
        child = subprocess.Popen(
            [sys.executable, "-c", code, f"oci://{proxy.host}/{target}", "--name", "tiny"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 64 * 1024):
            assert child.poll() is None, "the pull finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

        written = partial.stat().st_size
        assert 0 < written < size
        assert not layout.blobs.has(weights)  # nothing under the digest
        assert layout.tags.read(parse_name("tiny")) is None and registry.get("tiny") is None

        proxy.bytes_per_second = None
        pulled = transfer.pull(
            registry, layout, settings, f"oci://{proxy.host}/{target}", name="tiny"
        )
        assert pulled.resumed[weights] >= written
        blob_gets = [s for s in proxy.seen if s.method == "GET" and weights in s.path]
        assert blob_gets[-1].range == f"bytes={pulled.resumed[weights]}-"
    finally:
        proxy.stop()
    assert layout.blobs.path(weights).read_bytes() == stored[weights]
    assert not partial.exists()


def test_basic_auth_wrong_password_fails_clearly_then_login_works(
    oci_registry_htpasswd: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
) -> None:
    host = oci_registry_htpasswd.host
    target = f"{host}/{repo()}:v1"
    with pytest.raises(Unavailable) as anonymous:
        transfer.push(registry, layout, settings, "tiny", target)
    assert "needs authentication" in anonymous.value.message
    assert anonymous.value.hint == f"log in with: mlxctl login {host}"

    with pytest.raises(Unavailable) as wrong:
        transfer.login(settings, host, REGISTRY_USER, "not-the-password")
    assert wrong.value.message == f"registry {host} rejected the credentials of '{REGISTRY_USER}'"
    assert not transfer.credentials_path(settings).exists()

    assert transfer.login(settings, host, REGISTRY_USER, REGISTRY_PASSWORD) == host
    saved = transfer.credentials_path(settings)
    assert saved.stat().st_mode & 0o777 == 0o600
    assert REGISTRY_PASSWORD not in saved.read_text()  # base64, as Docker keeps it
    assert len(transfer.push(registry, layout, settings, "tiny", target).uploaded) == len(stored)
    remove(registry, "tiny")
    assert transfer.pull(registry, layout, settings, target, name="tiny").record.slug == "tiny"

    assert transfer.logout(settings, host)
    with pytest.raises(Unavailable, match="needs authentication"):
        transfer.push(registry, layout, settings, "tiny", f"{host}/{repo()}:v1")


def test_docker_config_credentials_are_used(
    oci_registry_htpasswd: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = oci_registry_htpasswd.host
    docker = tmp_path / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {f"http://{host}": {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    report = transfer.push(registry, layout, settings, "tiny", f"{host}/{repo()}:v1")
    assert len(report.uploaded) == len(stored)


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[RegistryServer, TokenServer]]:
    if registry_binary() is None:
        pytest.skip(SKIP_REASON)
    if shutil.which("openssl") is None:
        pytest.skip("bearer-token tests sign their JWTs with the openssl CLI")
    tokens = TokenServer(tmp_path, {"alice": "wonderland"})
    server = RegistryServer(tmp_path / "registry", auth=tokens.registry_auth())
    server.root.mkdir()
    server.start()
    yield server, tokens
    server.stop()
    tokens.stop()


def test_bearer_token_challenge(
    token_registry: tuple[RegistryServer, TokenServer],
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    stored: dict[str, bytes],
) -> None:
    server, tokens = token_registry
    with pytest.raises(Unavailable, match="rejected the credentials of 'alice'"):
        transfer.login(settings, server.host, "alice", "looking-glass")
    transfer.login(settings, server.host, "alice", "wonderland")
    target = f"{server.host}/team/tiny:v1"
    assert len(transfer.push(registry, layout, settings, "tiny", target).uploaded) == len(stored)
    remove(registry, "tiny")
    assert transfer.pull(registry, layout, settings, target, name="tiny").record.slug == "tiny"
    scopes = {s for r in tokens.requests for s in r["scope"]}
    # The registry lists a scope's actions in either order (it echoes a Go map).
    actions = {frozenset(s.rsplit(":", 1)[1].split(",")) for s in scopes if "team/tiny" in s}
    assert actions == {frozenset({"pull", "push"}), frozenset({"pull"})}
    # One token per repository and access, not one per blob.
    assert len(tokens.requests) < len(stored)


def test_pulling_something_that_is_not_an_mlxctl_model_says_so(
    oci_registry: RegistryServer, registry: Registry, layout: StoreLayout, settings: Settings
) -> None:
    name = repo()
    base = f"http://{oci_registry.host}/v2/{name}"
    config = b"{}"
    digest = "sha256:" + __import__("hashlib").sha256(config).hexdigest()
    started = httpx.post(f"{base}/blobs/uploads/")
    httpx.put(
        httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest}), content=config
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": 2,
        },
        "layers": [],
    }
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert (
        httpx.put(f"{base}/manifests/v1", content=json.dumps(manifest), headers=headers).status_code
        == 201
    )
    with pytest.raises(InvalidInput, match="is not an mlxctl model"):
        transfer.pull(registry, layout, settings, f"{oci_registry.host}/{name}:v1")
    assert layout.tags.names() == []
