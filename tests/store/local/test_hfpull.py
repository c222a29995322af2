"""Pulls from the Hugging Face hub, against a local stand-in for its file endpoints."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlxctl.errors import InvalidInput, NotFound, Unavailable
from mlxctl.library import catalog, inventory, transfer
from mlxctl.registry import Registry
from mlxctl.settings import Settings
from mlxctl.store.content.tags import parse_name
from mlxctl.store.local.hfcache import scan_hf_cache
from mlxctl.store.local.hfpull import looks_like_hf, parse_hf_reference
from tests.store.hub_server import FakeHub

REPO = "mlx-test/Tiny-Qwen2"


class Recorder:
    def __init__(self) -> None:
        self.done: dict[str, tuple[int, int | None]] = {}
        self.finished: list[str] = []

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        self.done[key] = (done, total)

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        self.done[key] = (done, total)

    def finish(self, key: str, note: str = "") -> None:
        self.finished.append(key)


def test_references() -> None:
    assert parse_hf_reference("hf://org/repo@v1").revision == "v1"
    assert parse_hf_reference("org/repo").repo_id == "org/repo"
    assert looks_like_hf("org/repo") and looks_like_hf("hf://org/repo")
    assert not looks_like_hf("localhost:5000/org/repo") and not looks_like_hf("ghcr.io/org/repo")
    with pytest.raises(InvalidInput):
        parse_hf_reference("hf://../etc")


def test_pull_registers_a_store_model_linked_to_the_hf_cache(
    fake_hub: FakeHub, tiny_model: Path, registry: Registry, settings: Settings
) -> None:
    commit = fake_hub.add_repo(REPO, tiny_model)
    layout = catalog.open_store(settings)
    progress = Recorder()
    result = transfer.pull(registry, layout, settings, REPO, progress=progress)

    record = registry.get("tiny-qwen2")
    assert record is not None and result.record == record
    assert (record.source, record.repo_id, record.model_id) == ("store", REPO, "tiny-qwen2:latest")
    assert record.extra["origin"] == f"hf://{REPO}@{commit}"
    total = sum(p.stat().st_size for p in tiny_model.iterdir())
    assert progress.done["hf"] == (total, total) and progress.finished == ["hf"]

    # No bytes copied: each store blob is the HF cache's file, and the cache still scans clean.
    scan = scan_hf_cache(settings.hf_cache_dir)
    assert [f.record.repo_id for f in scan.found] == [REPO] and not scan.warnings
    snapshot = scan.found[0].info.path
    manifest, _ = layout.manifest(parse_name("tiny-qwen2"))
    for title, descriptor in manifest.files().items():
        blob = layout.blobs.path(descriptor.digest)
        assert blob.stat().st_ino == (snapshot / title).stat().st_ino
        assert (Path(record.cache_path) / title).read_bytes() == (tiny_model / title).read_bytes()

    # A second pull finds every file in the cache: metadata requests only.
    fake_hub.seen.clear()
    again = transfer.pull(registry, layout, settings, f"hf://{REPO}@{commit}", name="tiny-qwen2")
    assert again.downloaded == [] and again.manifest_digest == result.manifest_digest
    assert not [s for s in fake_hub.seen if s.method == "GET" and "/resolve/" in s.path]


def test_gated_missing_and_unknown_revisions_say_what_to_do(
    fake_hub: FakeHub, tiny_model: Path, registry: Registry, settings: Settings
) -> None:
    fake_hub.add_repo("mlx-test/gated", tiny_model, gated=True)
    fake_hub.add_repo(REPO, tiny_model)
    layout = catalog.open_store(settings)
    with pytest.raises(Unavailable) as gated:
        transfer.pull(registry, layout, settings, "mlx-test/gated")
    assert "gated" in gated.value.message and "HF_TOKEN" in (gated.value.hint or "")
    with pytest.raises(NotFound, match="no Hugging Face repo mlx-test/nope"):
        transfer.pull(registry, layout, settings, "hf://mlx-test/nope")
    with pytest.raises(NotFound, match="has no revision 'v9'"):
        transfer.pull(registry, layout, settings, f"{REPO}@v9")
    pytorch_only = tiny_model.parent / "pytorch-only"
    pytorch_only.mkdir(exist_ok=True)
    (pytorch_only / "config.json").write_text('{"model_type": "qwen2"}')
    (pytorch_only / "pytorch_model.bin").write_bytes(b"\0" * 100)
    fake_hub.add_repo("mlx-test/torch", pytorch_only)
    with pytest.raises(InvalidInput) as torch:
        transfer.pull(registry, layout, settings, "mlx-test/torch")
    assert (
        torch.value.message
        == "hf://mlx-test/torch is not an MLX model: no weight files (model*.safetensors)"
    )
    assert "mlx_lm.convert" in (torch.value.hint or "")
    assert registry.list() == [] and layout.tags.names() == []
    assert not [s for s in fake_hub.seen if s.path.endswith("pytorch_model.bin")]  # not fetched


def test_killed_pull_resumes_its_incomplete_file_with_range(
    fake_hub: FakeHub, tiny_model: Path, registry: Registry, settings: Settings
) -> None:
    fake_hub.add_repo(REPO, tiny_model)
    fake_hub.bytes_per_second = 400_000
    weights = (tiny_model / "model.safetensors").read_bytes()
    sha = hashlib.sha256(weights).hexdigest()
    blobs = settings.hf_cache_dir / "models--mlx-test--Tiny-Qwen2" / "blobs"

    def partial_size() -> int:
        # huggingface_hub 2.x names it <etag>.<random>.incomplete; older ones <etag>.incomplete.
        return max((p.stat().st_size for p in blobs.glob(f"{sha}*.incomplete")), default=0)

    layout = catalog.open_store(settings)

    # huggingface_hub writes 10 MiB at a time; smaller writes let a 1 MB blob be cut part-way.
    code = (
        "import sys, huggingface_hub.constants as c; c.DOWNLOAD_CHUNK_SIZE = 16384; "
        "from mlxctl.cli.store import pull; pull.main(sys.argv[1:])"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, REPO],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while partial_size() <= 64 * 1024:
        assert child.poll() is None, "the pull finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written = partial_size()
    assert 0 < written < len(weights)
    assert not layout.blobs.has("sha256:" + sha) and registry.get("tiny-qwen2") is None

    fake_hub.bytes_per_second = None
    fake_hub.seen.clear()
    transfer.pull(registry, layout, settings, REPO)
    ranges = [s.range for s in fake_hub.seen if s.path.endswith("/model.safetensors") and s.range]
    assert ranges and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= written
    assert layout.blobs.path("sha256:" + sha).read_bytes() == weights
    assert not list(blobs.glob("*.incomplete"))


def test_init_after_a_pull_finds_the_store_model_not_a_duplicate(
    fake_hub: FakeHub, tiny_model: Path, registry: Registry, settings: Settings
) -> None:
    fake_hub.add_repo(REPO, tiny_model)
    transfer.pull(registry, catalog.open_store(settings), settings, REPO)
    report = inventory.init_from_hf_cache(registry, settings.hf_cache_dir)
    assert report.added == [] and [r.slug for r in report.unchanged] == ["tiny-qwen2"]
    assert [r.slug for r in registry.list()] == ["tiny-qwen2"]
