from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx

from mlxctl.store.local.hfcache import HF_SOURCE, scan_hf_cache
from tests.store.store_helpers import (
    PARAMETERS,
    commit,
    lay_out_repo,
    llama_config,
    llama_weights,
    quantize_weights,
)

ModelFiles = Callable[..., dict[str, bytes]]


def test_scan_finds_mlx_models_and_skips_the_rest(hf_cache: Path, model_files: ModelFiles) -> None:
    weights = quantize_weights(llama_weights(), scales=mx.bfloat16)
    q4 = model_files(
        config=llama_config(quantization={"bits": 4, "group_size": 64}), weights=weights
    )
    lay_out_repo(
        hf_cache, "mlx-community/Tiny-Llama-4bit", {commit("q4"): q4}, {"main": commit("q4")}
    )
    config = json.dumps(llama_config()).encode()
    lay_out_repo(
        hf_cache,
        "org/torch-only",
        {commit("pt"): {"config.json": config, "pytorch_model.bin": b"\0" * 32}},
        {"main": commit("pt")},
    )
    lay_out_repo(
        hf_cache, "org/Tiny-GGUF", {commit("gg"): {"tiny-q4_k_m.gguf": b"GGUF" + b"\0" * 8}}
    )
    lay_out_repo(
        hf_cache,
        "org/broken",
        {commit("br"): {"config.json": b"{", "model.safetensors": b"\0" * 16}},
    )
    lay_out_repo(
        hf_cache, "org/some-data", {commit("ds"): {"data.csv": b"a,b\n"}}, repo_type="datasets"
    )

    result = scan_hf_cache(hf_cache)

    assert [m.record.repo_id for m in result.found] == ["mlx-community/Tiny-Llama-4bit"]
    found = result.found[0]
    repo_dir = hf_cache / "models--mlx-community--Tiny-Llama-4bit"
    # huggingface_hub resolves the cache folder (/var → /private/var on macOS).
    snapshot = (repo_dir / "snapshots" / commit("q4")).resolve()
    record = found.record
    assert record.slug == "tiny-llama-4bit"
    assert record.model_id == record.repo_id == "mlx-community/Tiny-Llama-4bit"
    assert record.cache_path == str(snapshot)
    assert record.revision == commit("q4")
    assert record.source == HF_SOURCE == "hf-cache"
    assert (record.parameters, record.quant_bits, record.quant_group_size) == (PARAMETERS, 4, 64)
    # Sizes come from the blobs behind the snapshot's symlinks.
    assert record.size_bytes == len(q4["model.safetensors"])
    assert found.is_main_ref and found.refs == ("main",)

    reasons = {s.repo_id: s.reason for s in result.skipped}
    assert reasons.keys() == {"org/torch-only", "org/Tiny-GGUF", "org/broken"}
    assert reasons["org/torch-only"].startswith("PyTorch weights only")
    assert "unreadable GGUF file" in reasons["org/Tiny-GGUF"]
    assert reasons["org/broken"].startswith("config.json: not valid JSON")
    for entry in result.skipped:
        assert entry.path.parent.name == "snapshots" and entry.revision == entry.path.name
        assert "\n" not in entry.reason
    assert result.notes == ("ignored 1 dataset/space/kernel repo(s)",)
    assert result.warnings == ()


def test_two_revisions_main_first(hf_cache: Path, model_files: ModelFiles) -> None:
    old = model_files(config=llama_config(max_position_embeddings=1024))
    new = model_files(config=llama_config(max_position_embeddings=4096))
    repo = lay_out_repo(
        hf_cache, "org/Tiny", {commit("old"): old, commit("new"): new}, {"main": commit("new")}
    )
    # Make the non-main revision the most recent one: refs/main still wins the ordering.
    for blob in (repo / "blobs").iterdir():
        os.utime(blob, (1_000, 1_000))
    os.utime(repo / "blobs" / hashlib.sha256(old["config.json"]).hexdigest(), (9_000, 9_000))

    result = scan_hf_cache(hf_cache)

    assert [m.record.revision for m in result.found] == [commit("new"), commit("old")]
    assert [m.is_main_ref for m in result.found] == [True, False]
    assert [m.record.context_length for m in result.found] == [4096, 1024]
    assert {m.record.slug for m in result.found} == {"tiny"}
    assert result.preferred() == result.found[:1]
    assert len(result.records()) == 2


def test_without_main_ref_newest_is_preferred(hf_cache: Path, model_files: ModelFiles) -> None:
    a = model_files(config=llama_config(max_position_embeddings=1024))
    b = model_files(config=llama_config(max_position_embeddings=4096))
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("a"): a, commit("b"): b})
    for blob in (repo / "blobs").iterdir():
        os.utime(blob, (1_000, 1_000))
    os.utime(repo / "blobs" / hashlib.sha256(b["config.json"]).hexdigest(), (9_000, 9_000))

    (preferred,) = scan_hf_cache(hf_cache).preferred()
    assert preferred.record.revision == commit("b") and not preferred.is_main_ref


def test_corrupted_entries_become_warnings(hf_cache: Path, model_files: ModelFiles) -> None:
    lay_out_repo(hf_cache, "org/Good", {commit("g"): model_files()}, {"main": commit("g")})
    # A ref naming a commit that has no snapshot, and a repo without snapshots.
    lay_out_repo(hf_cache, "org/Dangling", {commit("d"): model_files()}, {"main": commit("x")})
    (hf_cache / "models--org--empty").mkdir()

    result = scan_hf_cache(hf_cache)

    assert [m.record.repo_id for m in result.found] == ["org/Good"]
    assert len(result.warnings) == 2
    assert any("missing commit hashes" in w for w in result.warnings)
    assert any("Snapshots dir doesn't exist" in w for w in result.warnings)


def test_broken_symlink_in_snapshot_is_a_warning(hf_cache: Path, model_files: ModelFiles) -> None:
    files = model_files()
    repo = lay_out_repo(hf_cache, "org/Tiny", {commit("t"): files}, {"main": commit("t")})
    (repo / "blobs" / hashlib.sha256(files["model.safetensors"]).hexdigest()).unlink()
    result = scan_hf_cache(hf_cache)
    assert result.found == () and len(result.warnings) == 1


def test_missing_cache_dir_is_an_empty_result(tmp_path: Path) -> None:
    result = scan_hf_cache(tmp_path / "no-such-cache")
    assert result.found == () and result.skipped == () and result.warnings == ()
    assert result.notes and "no Hugging Face cache" in result.notes[0]


def test_cache_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "hub"
    path.write_text("")
    result = scan_hf_cache(path)
    assert result.found == () and len(result.notes) == 1


def test_empty_cache(hf_cache: Path) -> None:
    result = scan_hf_cache(hf_cache)
    assert (result.found, result.skipped, result.warnings, result.notes) == ((), (), (), ())
