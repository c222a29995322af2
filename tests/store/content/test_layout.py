"""Names, manifests, tags, model folders and garbage collection in the store folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.store.content.garbage import execute_prune, execute_untag, plan_prune, plan_untag
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import (
    CONFIG,
    TITLE,
    WEIGHTS,
    Descriptor,
    Manifest,
    ModelConfig,
    media_type_for,
)
from mlxctl.store.content.tags import ModelName, parse_name


def tag_model(layout: StoreLayout, name: str, files: dict[str, bytes]) -> tuple[Manifest, str]:
    config = layout.blobs.write_bytes(ModelConfig(model_type="llama").to_bytes())
    layers = []
    for title, data in sorted(files.items()):
        blob = layout.blobs.write_bytes(data)
        layers.append(Descriptor(media_type_for(title), blob.digest, blob.size, {TITLE: title}))
    manifest = Manifest(Descriptor(CONFIG, config.digest, config.size), tuple(layers))
    return manifest, layout.put(parse_name(name), manifest)


def test_names_and_slugs() -> None:
    assert parse_name("qwen") == ModelName("qwen", "latest")
    assert parse_name("qwen:4b-q4").slug == "qwen:4b-q4"
    assert parse_name("qwen:latest").slug == "qwen"
    with pytest.raises(InvalidInput) as info:
        parse_name("My Model")
    assert info.value.hint == "for example: my-model"


def test_manifest_is_an_oci_image_manifest_with_titled_layers(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    manifest, digest = tag_model(layout, "m", {"model.safetensors": b"w", "config.json": b"{}"})
    raw = json.loads(layout.tags.read(parse_name("m")) or b"")
    assert raw["schemaVersion"] == 2
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert raw["config"]["mediaType"] == "application/vnd.mlxctl.model.config.v1+json"
    weights = next(d for d in raw["layers"] if d["mediaType"] == WEIGHTS)
    assert weights["annotations"] == {TITLE: "model.safetensors"}
    assert Manifest.from_bytes(layout.tags.read(parse_name("m")) or b"") == manifest
    assert layout.manifest(parse_name("m")) == (manifest, digest)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"mediaType": "application/vnd.oci.image.index.v1+json"}, "not an OCI image manifest"),
        ({"config": {"mediaType": "application/vnd.oci.image.config.v1+json"}}, "not an mlxctl"),
        ({"layers": [{"title": "../../etc/passwd"}]}, "not a plain relative path"),
    ],
)
def test_foreign_or_hostile_manifests_are_refused(change: dict[str, object], error: str) -> None:
    digest = "sha256:" + "0" * 64
    raw: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": CONFIG, "digest": digest, "size": 1},
        "layers": [],
    }
    if "config" in change:
        raw["config"] = {"digest": digest, "size": 1, **change["config"]}  # type: ignore[dict-item]
    elif "layers" in change:
        raw["layers"] = [
            {
                "mediaType": WEIGHTS,
                "digest": digest,
                "size": 1,
                "annotations": {TITLE: "../../etc/passwd"},
            }
        ]
    else:
        raw.update(change)
    with pytest.raises(InvalidInput, match=error):
        Manifest.from_bytes(json.dumps(raw).encode())


def test_a_tag_never_names_a_missing_blob(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    missing = Descriptor(CONFIG, "sha256:" + "1" * 64, 3)
    with pytest.raises(InvalidInput, match="not stored yet"):
        layout.put(parse_name("m"), Manifest(missing))
    assert layout.tags.names() == []


def test_model_folder_links_every_file_to_its_blob(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    manifest, digest = tag_model(layout, "m", {"config.json": b"{}", "adapter/a.safetensors": b"a"})
    folder = layout.materialise(manifest, digest)
    assert folder.name == digest.replace(":", "-")
    assert (folder / "adapter/a.safetensors").read_bytes() == b"a"
    link = folder / "config.json"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert layout.materialise(manifest, digest) == folder  # built once, then reused


def test_untag_frees_only_blobs_no_other_tag_uses(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    shared = b"s" * 1000
    tag_model(
        layout, "a", {"config.json": b"{}", "model.safetensors": shared, "LICENSE": b"A" * 10}
    )
    manifest_b, _ = tag_model(layout, "b", {"config.json": b"{}", "model.safetensors": shared})
    layout.materialise(*layout.manifest(parse_name("a")))
    plan = plan_untag(layout, parse_name("a"))
    assert {layout.blobs.path(d).read_bytes() for d in plan.blobs} == {b"A" * 10}
    # The config blobs are equal (same ModelConfig), so only the license is freed.
    assert plan.freed_bytes == 10 and len(plan.kept) == 3
    freed, deleted = execute_untag(layout, plan)
    assert (freed, deleted) == (10, True)
    assert layout.tags.names() == [parse_name("b")]
    assert all(layout.blobs.has(d.digest) for d in manifest_b.blobs())
    assert layout.model_dirs() == []


def test_prune_plans_then_deletes_what_nothing_references(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    manifest, digest = tag_model(layout, "keep", {"config.json": b"{}"})
    orphan = layout.blobs.write_bytes(b"o" * 500)
    stale = layout.blobs.root / ".tmp-deadbeef"
    stale.write_bytes(b"t" * 70)
    tag_temp = layout.tags.root / "keep" / ".tmp-latest-0000"
    tag_temp.write_bytes(b"{")
    os.utime(tag_temp, (time.time() - 3600, time.time() - 3600))
    unused_dir = layout.models_dir / "sha256-unused"
    unused_dir.mkdir(parents=True)
    kept_dir = layout.materialise(manifest, digest)

    plan = plan_prune(layout)
    assert plan.blobs == ((orphan.digest, 500),)
    assert plan.leftovers == ((stale, 70),)
    assert plan.model_dirs == (unused_dir,) and plan.tag_temps == (tag_temp,)
    assert plan.freed_bytes == 570
    assert layout.blobs.has(orphan.digest) and stale.exists()  # planning changes nothing

    assert execute_prune(layout, plan) == 570
    assert not layout.blobs.has(orphan.digest) and not stale.exists() and not tag_temp.exists()
    assert not unused_dir.exists() and kept_dir.exists()
    assert all(layout.blobs.has(d.digest) for d in manifest.blobs())
    assert plan_prune(layout).empty


def test_prune_waits_for_running_writers(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    orphan = layout.blobs.write_bytes(b"written by a pull that has not tagged yet")
    plan = plan_prune(layout)
    with layout.writing():
        assert execute_prune(layout, plan) is None
    assert layout.blobs.has(orphan.digest)
    assert execute_prune(layout, plan) == len(b"written by a pull that has not tagged yet")
