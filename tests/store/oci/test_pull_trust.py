"""A hostile registry cannot make a pull read, write or replace anything outside the model.

The stand-in registry (hostile_registry.py) serves what Debian's docker-registry
would refuse to store: configs naming files outside the model, bad layer
titles, endless manifests, redirects. M1 uses the real docker-registry.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlxctl.errors import Conflict, InvalidInput, Unavailable
from mlxctl.library import catalog, inventory, transfer
from mlxctl.registry import Registry
from mlxctl.settings import Settings
from mlxctl.store.content.garbage import PrunePlan, execute_prune, plan_prune
from mlxctl.store.content.layout import StoreLayout, UnreadableTag
from mlxctl.store.content.manifest import FILE, TITLE, check_title
from mlxctl.store.content.tags import parse_name
from mlxctl.store.local.hfpull import parse_hf_reference
from mlxctl.store.oci.auth import Credentials, CredentialStore
from mlxctl.store.oci.client import MAX_MANIFEST_BYTES, RegistryClient
from tests.cli.runner import Run
from tests.store.hostile_registry import model_files, stand_in
from tests.store.registry_server import RegistryServer


@pytest.fixture
def layout(settings: Settings) -> StoreLayout:
    return catalog.open_store(settings)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from mlxctl.factory import make_model

    return model_files(make_model(tmp_path_factory.mktemp("m") / "qwen", arch="qwen2"))


def nothing_written(layout: StoreLayout, registry: Registry) -> None:
    assert list(layout.blobs.digests()) == [] and list(layout.blobs.leftovers()) == []
    assert layout.tags.names() == [] and layout.model_dirs() == []
    assert registry.list() == []


def hostile_layer(title: str) -> dict[str, Any]:
    return {
        "mediaType": FILE,
        "digest": "sha256:" + "0" * 64,
        "size": 1,
        "annotations": {TITLE: title},
    }


@pytest.mark.parametrize(
    ("config", "layers", "needle"),
    [
        ({"chat_template": "../../../auth.json"}, [], "not one of the model's files"),
        ({"chat_template": "/etc/hostname"}, [], "not one of the model's files"),
        ({"adapter": "../../.."}, [], "adapter folder"),
        ({"adapter": "/etc"}, [], "adapter folder"),
        ({"adapter": "tokenizer.json"}, [], "holds none of the model's files"),
        ({"tool_call_parser": "../../os"}, [], "unknown tool call parser"),
        ({"reasoning_parser": "anything"}, [], "unknown reasoning parser"),
        ({"architectures": "Qwen2"}, [], "invalid value"),
        ({"context_length": "8k"}, [], "invalid value"),
        ({}, [hostile_layer(".")], "plain relative path"),
        ({}, [hostile_layer("a/./b")], "plain relative path"),
        ({}, [hostile_layer("a//b")], "plain relative path"),
        ({}, [hostile_layer("../x")], "plain relative path"),
        ({}, [hostile_layer("x\x00y")], "plain relative path"),
        ({}, [hostile_layer("tab\there")], "plain relative path"),
        ({}, [hostile_layer("a" * 256)], "plain relative path"),
        ({}, [hostile_layer(f"f{i}") for i in range(4097)], "layers (at most 4096)"),
    ],
)
def test_a_hostile_manifest_is_refused_and_nothing_is_written(
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    files: dict[str, bytes],
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    needle: str,
) -> None:
    with stand_in() as hostile:
        hostile.put_model("evil/qwen", "v1", files, config=config, layers=layers)
        with pytest.raises(InvalidInput) as refused:
            transfer.pull(registry, layout, settings, f"{hostile.host}/evil/qwen:v1")
        fetched = [path for _, path, _ in hostile.requests if "/blobs/" in path]
    assert needle in refused.value.message
    assert len(fetched) <= 1  # at most the config blob, read into memory, never a layer
    nothing_written(layout, registry)


def test_a_manifest_without_a_model_leaves_no_tag(
    registry: Registry, layout: StoreLayout, settings: Settings
) -> None:
    with stand_in() as hostile:
        hostile.put_model("odd/thing", "v1", {"README.md": b"not a model"})
        with pytest.raises(InvalidInput) as refused:
            transfer.pull(registry, layout, settings, f"{hostile.host}/odd/thing:v1")
    assert "is not a model mlxctl can serve" in refused.value.message
    assert layout.tags.names() == [] and registry.list() == []


def test_a_good_manifest_still_pulls_and_names_its_own_template(
    registry: Registry, layout: StoreLayout, settings: Settings, files: dict[str, bytes]
) -> None:
    own = {**files, "chat_template.jinja": b"{{ messages }}"}
    with stand_in() as hostile:
        hostile.put_model("team/qwen", "v1", own, config={"chat_template": "chat_template.jinja"})
        result = transfer.pull(registry, layout, settings, f"{hostile.host}/team/qwen:v1")
    template = Path(result.record.chat_template or "")
    assert template.parent == Path(result.record.cache_path)
    assert template.read_text() == "{{ messages }}"


def test_an_endless_manifest_is_cut_at_4_mib(
    registry: Registry, layout: StoreLayout, settings: Settings
) -> None:
    with stand_in() as hostile:
        hostile.endless_manifest = True
        with pytest.raises(InvalidInput) as refused:
            transfer.pull(registry, layout, settings, f"{hostile.host}/big/manifest:v1")
    assert f"is over {MAX_MANIFEST_BYTES} bytes" in refused.value.message
    nothing_written(layout, registry)


def test_a_manifest_redirect_is_not_followed(
    registry: Registry, layout: StoreLayout, settings: Settings, files: dict[str, bytes]
) -> None:
    with stand_in() as hostile, stand_in() as elsewhere:
        elsewhere.put_model("evil/qwen", "v1", files)
        hostile.redirect_manifests_to = f"http://{elsewhere.host}"
        with pytest.raises(Unavailable) as refused:
            transfer.pull(registry, layout, settings, f"{hostile.host}/evil/qwen:v1")
        assert elsewhere.requests == []
    assert "answered 307" in refused.value.message
    nothing_written(layout, registry)


def test_a_blob_redirect_to_another_host_carries_no_credentials(
    registry: Registry, layout: StoreLayout, settings: Settings, files: dict[str, bytes]
) -> None:
    with stand_in() as private, stand_in() as cdn:
        private.put_model("team/qwen", "v1", files)
        cdn.blobs = private.blobs
        private.basic_auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        private.redirect_blobs_to = f"http://{cdn.host}/cdn/"
        store = CredentialStore(transfer.credentials_path(settings))
        store.save(private.host, Credentials("alice", "s3cret"))
        pulled = transfer.pull(registry, layout, settings, f"{private.host}/team/qwen:v1")
        assert cdn.requests, "the blobs came from the CDN"
        assert all("Authorization" not in headers for _, _, headers in cdn.requests)
    assert registry.get(pulled.record.slug) is not None


def https_registry(handler: Any, seen: list[httpx.Request]) -> RegistryClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)  # type: ignore[no-any-return]

    return RegistryClient("registry.example", transport=httpx.MockTransport(record))


def test_an_https_registry_never_sends_mlxctl_to_plain_http() -> None:
    seen: list[httpx.Request] = []
    realm = 'Bearer realm="http://auth.example/token",service="registry.example"'

    def challenge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": realm})

    with https_registry(challenge, seen) as client, pytest.raises(Unavailable) as refused:
        client.ping()
    assert "over plain http; refused" in refused.value.message
    assert [str(r.url.host) for r in seen] == ["registry.example"]  # the realm was never asked


def test_parse_hf_reference_refuses_a_revision_that_is_a_path() -> None:
    assert parse_hf_reference("org/repo@refs/pr/1").revision == "refs/pr/1"
    assert parse_hf_reference("org/repo@v1.0").revision == "v1.0"
    for bad in ("org/repo@../../../etc/passwd", "org/repo@a/../../b", "org/repo@/abs", "o/r@x\ny"):
        with pytest.raises(InvalidInput, match="is not a Hugging Face revision"):
            parse_hf_reference(bad)


def test_the_pull_command_refuses_a_path_revision(run: Run) -> None:
    result = run("pull", "org/repo@../../../../etc/passwd")
    assert result.code == 2 and "is not a Hugging Face revision" in result.err


@pytest.mark.parametrize("title", [".", "", "a/", "/a", "a/../b", "x\x00", "\x7f", "é" * 128])
def test_check_title_refuses_anything_but_plain_names(title: str) -> None:
    with pytest.raises(InvalidInput):
        check_title(title)


def test_check_title_takes_nested_plain_names() -> None:
    assert check_title("adapter/adapters.safetensors") == "adapter/adapters.safetensors"
    assert check_title("é" * 127) == "é" * 127


# Garbage collection fails closed (L4) -------------------------------------------


@pytest.fixture
def twins(registry: Registry, layout: StoreLayout, tiny_model: Path) -> Path:
    """`tiny` and `twin` share every blob; `twin`'s tag is damaged. Its tag file."""
    inventory.register_path(registry, tiny_model, slug="tiny-src")
    catalog.copy(registry, layout, "tiny-src", "tiny")
    catalog.copy(registry, layout, "tiny", "twin")
    tag = layout.tags.path(parse_name("twin"))
    tag.write_bytes(b'{"schemaVersion": 3}')  # a newer mlxctl's, or a damaged one
    return tag


def test_prune_stops_at_an_unreadable_tag_and_deletes_nothing(
    registry: Registry, layout: StoreLayout, twins: Path
) -> None:
    blobs = sorted(layout.blobs.digests())
    with pytest.raises(UnreadableTag) as stopped:
        plan_prune(layout, catalog.orphan_tags(registry, layout))
    assert "twin:latest" in stopped.value.message and str(twins) in str(stopped.value.hint)
    with pytest.raises(UnreadableTag):  # a plan made earlier stops too, before deleting
        execute_prune(layout, PrunePlan(blobs=tuple((d, 0) for d in blobs)))
    assert sorted(layout.blobs.digests()) == blobs


def test_removing_a_model_keeps_blobs_an_unreadable_tag_may_use(
    registry: Registry, layout: StoreLayout, settings: Settings, twins: Path
) -> None:
    blobs = sorted(layout.blobs.digests())
    record, plan = inventory.plan_rm(registry, "tiny", settings)
    assert any("twin:latest cannot be read" in note for note in plan.notes)
    inventory.rm(registry, record, plan)
    assert registry.get("tiny") is None and layout.tags.read(parse_name("tiny")) is None
    assert sorted(layout.blobs.digests()) == blobs  # twin's data survives


def test_the_prune_command_names_the_unreadable_tag(run: Run, twins: Path) -> None:
    result = run("prune")
    assert result.code == 4 and "twin:latest cannot be read" in result.err


# A pull never silently replaces another model (M1) ---------------------------------


def test_a_pull_from_another_source_does_not_replace_a_model(
    oci_registry: RegistryServer,
    registry: Registry,
    layout: StoreLayout,
    settings: Settings,
    tiny_model: Path,
) -> None:
    inventory.register_path(registry, tiny_model, slug="tiny-src")
    catalog.copy(registry, layout, "tiny-src", "tiny")
    suffix = os.urandom(4).hex()
    trusted = f"{oci_registry.host}/trusted-{suffix}/qwen:v1"
    hostile = f"localhost:{oci_registry.port}/evil-{suffix}/qwen:v1"
    for target in (trusted, hostile):
        transfer.push(registry, layout, settings, "tiny", target)
    first = transfer.pull(registry, layout, settings, trusted, name="qwen")
    assert transfer.pull(registry, layout, settings, trusted, name="qwen").record.repo_id == (
        first.record.repo_id
    )  # the same source again: an update
    with pytest.raises(Conflict) as refused:
        transfer.pull(registry, layout, settings, hostile, name="qwen")
    assert "would replace 'qwen'" in refused.value.message
    assert f"trusted-{suffix}/qwen" in refused.value.message
    assert "--name qwen-2:latest" in str(refused.value.hint)
    kept = registry.get("qwen")
    assert kept is not None and kept.repo_id == first.record.repo_id
    replaced = transfer.pull(registry, layout, settings, hostile, name="qwen", replace=True)
    assert replaced.record.repo_id == f"localhost:{oci_registry.port}/evil-{suffix}/qwen"
