from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from mlxctl.errors import Conflict
from mlxctl.registry.record import ModelRecord
from mlxctl.store.local.hfcache import scan_hf_cache
from mlxctl.store.local.modelinfo import inspect_model_dir, to_record
from mlxctl.store.local.removal import RemovalPlan, execute_removal, plan_removal
from tests.store.store_helpers import commit, disk_bytes, lay_out_repo, llama_config, write_model

ModelFiles = Callable[..., dict[str, bytes]]


def _registered(cache: Path) -> dict[str, ModelRecord]:
    """Every scanned revision, registered under `<slug>@<first 4 hex of revision>`."""
    records = {}
    for model in scan_hf_cache(cache).found:
        record = model.record
        slug = f"{record.slug}@{(record.revision or '')[:4]}"
        records[slug] = dataclasses.replace(record, slug=slug)
    return records


def _plan(record: ModelRecord, others: list[ModelRecord], cache: Path) -> RemovalPlan:
    return plan_removal(record, others, hf_cache=cache, store_root=cache.parent / "store")


def _blob(repo: Path, data: bytes) -> Path:
    return repo / "blobs" / hashlib.sha256(data).hexdigest()


def test_last_revision_takes_the_repo_folder(hf_cache: Path, model_files: ModelFiles) -> None:
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("t"): model_files()}, {"main": commit("t")})
    other = lay_out_repo(hf_cache, "org/Other", {commit("o"): model_files()}, {"main": commit("o")})
    # An orphan blob and a partial download go with the folder, and are counted.
    (repo / "blobs" / "orphan").write_bytes(b"x" * 100)
    (repo / "blobs" / "abc.incomplete").write_bytes(b"y" * 50)
    records = _registered(hf_cache)
    (tiny,) = (r for r in records.values() if r.repo_id == "org/Tiny")

    plan = _plan(tiny, list(records.values()), hf_cache)

    assert not plan.blocked and plan.deletes_files
    assert plan.deletes == (repo.resolve(),)
    assert plan.freed_bytes == disk_bytes(repo)
    before = disk_bytes(hf_cache)
    freed = execute_removal(plan)
    assert freed == plan.freed_bytes == before - disk_bytes(hf_cache)
    assert not repo.exists()
    assert disk_bytes(other) > 0 and inspect_model_dir(other / "snapshots" / commit("o"))


def test_executing_twice_is_safe(hf_cache: Path, model_files: ModelFiles) -> None:
    lay_out_repo(hf_cache, "org/Tiny", {commit("t"): model_files()}, {"main": commit("t")})
    (tiny,) = _registered(hf_cache).values()
    plan = _plan(tiny, [tiny], hf_cache)
    assert execute_removal(plan) == plan.freed_bytes > 0
    assert execute_removal(plan) == 0
    again = _plan(tiny, [tiny], hf_cache)
    assert again.deletes == () and again.freed_bytes == 0
    assert "already gone" in again.notes[0]
    assert execute_removal(again) == 0


def test_partly_deleted_by_hand_still_executes(hf_cache: Path, model_files: ModelFiles) -> None:
    old, new = model_files(), model_files()
    repo = lay_out_repo(
        hf_cache, "org/Tiny", {commit("old"): old, commit("new"): new}, {"main": commit("new")}
    )
    records = _registered(hf_cache)
    (record,) = (r for r in records.values() if r.revision == commit("new"))
    plan = _plan(record, list(records.values()), hf_cache)
    _blob(repo, new["model.safetensors"]).unlink()
    assert execute_removal(plan) == plan.freed_bytes - len(new["model.safetensors"])
    assert not (repo / "snapshots" / commit("new")).exists()


def test_shared_blob_between_registered_revisions_is_kept(
    hf_cache: Path, model_files: ModelFiles
) -> None:
    old = model_files(config=llama_config(max_position_embeddings=1024))
    new = model_files(config=llama_config(max_position_embeddings=4096))
    repo = lay_out_repo(
        hf_cache, "org/Tiny", {commit("old"): old, commit("new"): new}, {"main": commit("new")}
    )
    records = _registered(hf_cache)
    (newer,) = (r for r in records.values() if r.revision == commit("new"))
    shared = _blob(repo, new["tokenizer_config.json"]).resolve()
    assert old["tokenizer_config.json"] == new["tokenizer_config.json"]

    plan = _plan(newer, list(records.values()), hf_cache)

    # Both revisions are registered and share a blob: the blob stays, nothing is blocked.
    assert plan.blocked_by == ()
    assert plan.kept == (shared,)
    assert set(plan.deletes) == {
        (repo / "snapshots" / commit("new")).resolve(),
        (repo / "refs" / "main").resolve(),
        _blob(repo, new["config.json"]).resolve(),
        _blob(repo, new["model.safetensors"]).resolve(),
    }
    before = disk_bytes(hf_cache)
    assert execute_removal(plan) == plan.freed_bytes == before - disk_bytes(hf_cache)
    assert shared.exists() and not (repo / "refs" / "main").exists()
    (left,) = scan_hf_cache(hf_cache).found
    assert left.record.revision == commit("old") and left.record.context_length == 1024


def test_same_snapshot_registered_twice_is_blocked(hf_cache: Path, model_files: ModelFiles) -> None:
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("t"): model_files()}, {"main": commit("t")})
    (tiny,) = _registered(hf_cache).values()
    alias = dataclasses.replace(tiny, slug="alias")

    plan = _plan(tiny, [tiny, alias], hf_cache)

    assert plan.blocked_by == ("alias",) and plan.blocked
    assert plan.deletes == () and plan.freed_bytes == 0 and not plan.deletes_files
    before = disk_bytes(hf_cache)
    with pytest.raises(Conflict, match="shares files with alias"):
        execute_removal(plan)
    assert disk_bytes(hf_cache) == before and repo.exists()


def test_manual_folder_linking_a_blob_blocks(
    hf_cache: Path, model_files: ModelFiles, tmp_path: Path
) -> None:
    files = model_files()
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("t"): files}, {"main": commit("t")})
    (tiny,) = _registered(hf_cache).values()
    linked = tmp_path / "my-model"
    linked.mkdir()
    (linked / "model.safetensors").symlink_to(_blob(repo, files["model.safetensors"]))
    unrelated = write_model(tmp_path / "unrelated")
    others = [
        to_record(inspect_model_dir(unrelated), slug="unrelated"),
        ModelRecord(slug="linked", cache_path=str(linked)),
        ModelRecord(slug="vanished", cache_path=str(tmp_path / "gone")),
    ]

    assert _plan(tiny, others, hf_cache).blocked_by == ("linked",)
    assert _plan(tiny, [others[0], others[2]], hf_cache).blocked_by == ()


def test_manual_model_deletes_no_files(tmp_path: Path) -> None:
    path = write_model(tmp_path / "mine")
    record = to_record(inspect_model_dir(path), slug="mine")
    assert record.source == "manual"

    plan = _plan(record, [record], tmp_path / "hub")

    assert plan.deletes == () and plan.freed_bytes == 0 and not plan.deletes_files
    assert "left in place" in plan.notes[0]
    before = disk_bytes(path)
    assert execute_removal(plan) == 0
    assert disk_bytes(path) == before


def test_hf_record_outside_a_cache_deletes_nothing(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m")
    record = to_record(inspect_model_dir(path), slug="m", source="hf-cache")
    plan = _plan(record, [], tmp_path)  # inside the cache folder, not shaped as a snapshot
    assert plan.deletes == () and "not a Hugging Face cache snapshot" in plan.notes[0]
    assert execute_removal(plan) == 0 and path.exists()
    elsewhere = _plan(record, [], tmp_path / "hub")  # an imported row can name any folder
    assert elsewhere.deletes == () and "outside the Hugging Face cache" in elsewhere.notes[0]
    assert execute_removal(elsewhere) == 0 and path.exists()


def test_corrupted_repo_deletes_nothing(hf_cache: Path, model_files: ModelFiles) -> None:
    files = model_files()
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("t"): files}, {"main": commit("t")})
    (tiny,) = _registered(hf_cache).values()
    _blob(repo, files["config.json"]).unlink()

    plan = _plan(tiny, [tiny], hf_cache)

    assert plan.deletes == () and "corrupted" in plan.notes[0]
    assert "Blob missing" in plan.notes[0]
    assert execute_removal(plan) == 0 and repo.exists()
