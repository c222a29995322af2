"""Blobs are written by hash: nothing partial or wrong is ever named by a digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mlxctl.errors import Conflict
from mlxctl.store.content.blobs import BlobStore, CorruptBlob, file_digest


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def names(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root))


def test_write_names_the_blob_by_its_digest_and_reuses_it(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first = store.write_bytes(b"hello")
    again = store.write([b"hel", b"lo"])
    assert first.digest == again.digest == digest(b"hello")
    assert first.created and not again.created
    assert names(store) == ["sha256-" + digest(b"hello")[7:]]
    assert store.path(first.digest).read_bytes() == b"hello"
    assert store.path(first.digest).stat().st_mode & 0o777 == 0o444


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(CorruptBlob, match="nothing was stored"):
        store.write([b"evil"], expected=digest(b"good"))
    assert names(store) == []


def test_import_hard_links_and_leaves_the_source_alone(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 5000)
    store = BlobStore(tmp_path / "blobs")
    blob = store.import_file(source)
    assert blob.linked and blob.size == 5000
    assert store.path(blob.digest).stat().st_ino == source.stat().st_ino
    assert source.read_bytes() == b"w" * 5000 and source.stat().st_nlink == 2
    assert not store.import_file(source).created  # already there: no second link
    assert names(store) == ["sha256-" + blob.digest[7:]]


def test_interrupted_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(100_000)
    with store.download(digest(data), len(data)) as part:
        part.write(data[:30_000])  # then the process dies: the context exits
    assert not store.has(digest(data))
    assert names(store) == [".partial-sha256-" + digest(data)[7:]]
    with store.download(digest(data), len(data)) as part:
        assert part.offset == part.resumed_from == 30_000
        part.write(data[30_000:])
        blob = part.commit()
    assert blob.created and store.path(digest(data)).read_bytes() == data
    assert names(store) == ["sha256-" + digest(data)[7:]]


def test_wrong_bytes_never_become_a_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    good = b"g" * 1000
    with store.download(digest(good), len(good)) as part:
        part.write(b"b" * 1000)
        with pytest.raises(CorruptBlob, match="failed verification"):
            part.commit()
    with store.download(digest(good), len(good)) as part, pytest.raises(CorruptBlob):
        part.write(b"x" * 1001)  # longer than the blob
    assert names(store) == []


def test_a_locked_download_is_neither_shared_nor_pruned(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"d" * 10
    with store.download(digest(data), len(data)) as part:
        part.write(data[:5])
        with pytest.raises(Conflict, match="another process"):
            store.download(digest(data), len(data)).__enter__()
        assert store.leftovers() == []  # held by a running writer
    assert [p.name for p, _ in store.leftovers()] == [".partial-sha256-" + digest(data)[7:]]


def test_damaged_blob_is_reported_and_moved_aside(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob = store.write_bytes(b"0123456789")
    assert store.problem(blob.digest, 10) is None
    path = store.path(blob.digest)
    path.chmod(0o644)
    path.write_bytes(b"0123456780")
    assert "hash to" in (store.problem(blob.digest, 10) or "")
    moved = store.quarantine(blob.digest)
    assert moved is not None and moved.name.startswith(".corrupt-")
    assert store.problem(blob.digest) == "missing"
    assert file_digest(moved)[1] == 10 and store.digests() == {}
