"""GGUF metadata → registry facts, and GGUF models found in folders and the HF cache."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed")

from mlxctl.factory import lay_out_hf_cache
from mlxctl.factory.gguf import make_gguf
from mlxctl.settings import Settings
from mlxctl.store.local.ggufinfo import pick_gguf, read_gguf
from mlxctl.store.local.hfcache import scan_hf_cache
from mlxctl.store.local.modelinfo import inspect_model_dir, to_record
from tests.cli.runner import Run


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gguf")
    make_gguf(out, arch="qwen2", quant="Q4_0")
    return out


@pytest.mark.parametrize(
    ("arch", "quant", "bits", "dtype"),
    [("llama", "Q8_0", 8, None), ("qwen2", "F16", None, "float16")],
)
def test_read_gguf_reports_what_the_scheduler_needs(
    tmp_path: Path, arch: str, quant: str, bits: int | None, dtype: str | None
) -> None:
    path = make_gguf(tmp_path, arch=arch, quant=quant)
    info = read_gguf(path)
    assert (info.architecture, info.quantization, info.quant_bits) == (arch, quant, bits)
    assert info.dtype == dtype
    assert info.context_length == 4096
    # tiny: 2 layers x 2 KV heads x head_dim 16, K and V in f16.
    assert info.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    assert info.size_bytes == path.stat().st_size
    assert info.has_chat_template
    assert info.parameters > 100_000


def test_gguf_folder_becomes_a_gguf_record(gguf_dir: Path) -> None:
    info = inspect_model_dir(gguf_dir)
    assert info.supported and info.format == "gguf"
    assert (info.model_type, info.quant_bits, info.quantization) == ("qwen2", 4, "Q4_0")
    assert info.gguf_file == "qwen2-tiny-q4_0.gguf"
    record = to_record(info, slug="tiny-gguf")
    assert record.format == "gguf" and record.kv_bytes_per_token == 256
    assert record.extra["gguf_file"] == "qwen2-tiny-q4_0.gguf"
    assert record.extra["quantization"] == "Q4_0"


def test_pick_gguf_prefers_the_first_shard() -> None:
    files = [Path("m-00002-of-00002.gguf"), Path("m-00001-of-00002.gguf"), Path("a.gguf")]
    assert pick_gguf(files).name == "m-00001-of-00002.gguf"
    assert pick_gguf([Path("b.gguf"), Path("a.gguf")]).name == "a.gguf"


def test_hf_cache_scan_finds_gguf_repos(gguf_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = lay_out_hf_cache(gguf_dir, cache, "org/Tiny-GGUF")
    result = scan_hf_cache(cache)
    assert [m.record.repo_id for m in result.found] == ["org/Tiny-GGUF"]
    record = result.found[0].record
    assert record.format == "gguf" and record.slug == "tiny-gguf"
    assert Path(record.cache_path) == snapshot.resolve()


def test_init_registers_and_show_reports_a_gguf(gguf_dir: Path, run: Run) -> None:
    lay_out_hf_cache(gguf_dir, Settings.from_env().hf_cache_dir, "org/Tiny-GGUF")
    assert run("init").code == 0
    shown = run("show", "tiny-gguf", "--json")
    assert shown.code == 0, shown.err
    body = shown.json()
    assert '"gguf"' in shown.out and "Q4_0" in shown.out, body


def test_chat_template_reads_the_gguf_field(gguf_dir: Path, tmp_path: Path) -> None:
    from mlxctl.store.local.ggufinfo import chat_template

    assert "<|im_start|>" in chat_template(gguf_dir / "qwen2-tiny-q4_0.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF")
    assert chat_template(bad) == ""


def test_chat_template_parses_a_file_once_per_version(
    gguf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil

    import gguf

    from mlxctl.store.local.ggufinfo import chat_template

    file = tmp_path / "copy.gguf"
    shutil.copyfile(gguf_dir / "qwen2-tiny-q4_0.gguf", file)
    opened: list[str] = []
    real = gguf.GGUFReader

    def counting(path: str, *args: object) -> object:
        opened.append(path)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(gguf, "GGUFReader", counting)
    first = chat_template(file)
    assert chat_template(file) == first and len(opened) == 1  # /v1/models asks every time
    os.utime(file, ns=(0, 10**9))  # a changed file is read again
    assert chat_template(file) == first and len(opened) == 2


def test_chat_template_survives_any_reader_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf

    from mlxctl.store.local.ggufinfo import chat_template

    def broken(path: str, *args: object) -> object:
        raise RuntimeError("a gguf version this library never saw")

    monkeypatch.setattr(gguf, "GGUFReader", broken)
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(b"GGUF" + b"\0" * 32)
    assert chat_template(odd) == ""  # one model without a template, never a failed listing
