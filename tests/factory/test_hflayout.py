"""lay_out_hf_cache: a layout huggingface_hub and mlx-lm accept as a real download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache

from mlxctl.engine import mlxlm
from mlxctl.factory import lay_out_hf_cache
from mlxctl.factory.hflayout import blob_etag
from tests.factory.conftest import Built

REPO = "mlxctl-test/tiny-qwen2"


def test_scan_cache_dir_sees_one_clean_revision(built: Built, tmp_path: Path) -> None:
    model = built("qwen2")
    snapshot = lay_out_hf_cache(model, tmp_path, REPO)

    info = scan_cache_dir(tmp_path)
    assert info.warnings == []
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == (REPO, "model")
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"})
    assert revision.commit_hash == snapshot.name
    assert revision.nb_files == len(list(model.iterdir()))
    assert repo.size_on_disk == sum(p.stat().st_size for p in model.iterdir())


def test_files_are_relative_links_to_etag_blobs(built: Built, tmp_path: Path) -> None:
    model = built("qwen2")
    snapshot = lay_out_hf_cache(model, tmp_path, REPO)
    repo_dir = tmp_path / "models--mlxctl-test--tiny-qwen2"
    assert snapshot.parent == repo_dir / "snapshots"
    assert (repo_dir / "refs" / "main").read_text() == snapshot.name

    for source in model.iterdir():
        link = snapshot / source.name
        target = os.readlink(link)
        assert target.startswith("../../blobs/")
        assert link.read_bytes() == source.read_bytes()
        data = source.read_bytes()
        if source.suffix == ".safetensors":
            expected = hashlib.sha256(data).hexdigest()
        else:
            expected = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert Path(target).name == expected == blob_etag(source)


def test_git_etag_matches_git(tmp_path: Path) -> None:
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello\n")
    # `git hash-object hello.txt`
    assert blob_etag(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_revision_is_deterministic_and_layout_idempotent(built: Built, tmp_path: Path) -> None:
    model = built("qwen2")
    first = lay_out_hf_cache(model, tmp_path / "a", REPO)
    again = lay_out_hf_cache(model, tmp_path / "a", REPO)
    elsewhere = lay_out_hf_cache(model, tmp_path / "b", REPO)
    assert first == again
    assert first.name == elsewhere.name and len(first.name) == 40
    other = lay_out_hf_cache(built("llama"), tmp_path / "b", REPO)
    assert other.name != first.name
    assert (tmp_path / "b" / "models--mlxctl-test--tiny-qwen2" / "refs" / "main").read_text() == (
        other.name
    )
    assert scan_cache_dir(tmp_path / "b").warnings == []
    assert not list((tmp_path / "a").rglob("*.incomplete"))


def test_explicit_revision_and_ref(built: Built, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = lay_out_hf_cache(built("qwen2"), tmp_path, REPO, revision=commit, ref="v1")
    assert snapshot.name == commit
    (repo,) = scan_cache_dir(tmp_path).repos
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"v1"})


def test_hub_and_mlx_lm_resolve_the_repo(built: Built, tmp_path: Path) -> None:
    snapshot = lay_out_hf_cache(built("qwen2"), tmp_path, REPO)
    cached = try_to_load_from_cache(REPO, "config.json", cache_dir=tmp_path)
    assert cached == str(snapshot / "config.json")
    assert snapshot_download(REPO, cache_dir=tmp_path, local_files_only=True) == str(snapshot)

    model, tokenizer = mlxlm.load(snapshot)
    assert [r.token for r in mlxlm.stream_generate(model, tokenizer, "Hi", max_tokens=2)]


@pytest.mark.parametrize(
    ("repo_id", "revision"),
    [("a/b/c", None), ("/b", None), (REPO, "main"), (REPO, "ABCDEF0123" * 4)],
)
def test_bad_arguments_are_refused(
    built: Built, tmp_path: Path, repo_id: str, revision: str | None
) -> None:
    with pytest.raises(ValueError):
        lay_out_hf_cache(built("qwen2"), tmp_path, repo_id, revision=revision)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        lay_out_hf_cache(tmp_path / "empty", tmp_path / "cache", REPO)
