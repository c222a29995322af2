"""`init`, `list`, `show`, `rm`, `register` through the real entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlxctl.registry import open_registry
from tests.cli.runner import Run


def test_init_registers_factory_models_and_is_idempotent(run: Run, hf_cache: Path) -> None:
    first = run("init", "--json")
    assert first.code == 0, first.err
    added = {m["slug"]: m for m in first.json()["added"]}
    assert set(added) == {"tiny-qwen2", "tiny-llama-4bit"}
    qwen = added["tiny-qwen2"]
    assert qwen["repo_id"] == "mlxctl-factory/tiny-qwen2"
    assert qwen["format"] == "mlx" and qwen["source"] == "hf-cache"
    assert qwen["model_type"] == "qwen2" and qwen["parameters"] > 0
    assert qwen["kv_bytes_per_token"] > 0 and qwen["context_length"] > 0
    assert added["tiny-llama-4bit"]["quant_bits"] == 4
    assert Path(qwen["cache_path"]).is_relative_to(hf_cache)

    before = open_registry().list()
    second = run("init", "--json")
    assert second.code == 0 and second.json()["added"] == []
    assert sorted(second.json()["unchanged"]) == ["tiny-llama-4bit", "tiny-qwen2"]
    assert open_registry().list() == before


def test_init_reports_what_it_skips(run: Run, hf_cache: Path) -> None:
    junk = hf_cache / "models--someone--pytorch-only" / "snapshots" / ("a" * 40)
    junk.mkdir(parents=True)
    (junk / "config.json").write_text('{"model_type": "llama"}')
    (junk / "pytorch_model.bin").write_bytes(b"\0" * 16)
    (hf_cache / "models--someone--pytorch-only" / "refs").mkdir()
    (hf_cache / "models--someone--pytorch-only" / "refs" / "main").write_text("a" * 40)
    result = run("init")
    assert result.code == 0
    assert "skipped" in result.out and "someone/pytorch-only" in result.out
    assert "2 added" in result.out


def test_list_and_show(run: Run, hf_cache: Path) -> None:
    run("init")
    table = run("list")
    assert table.code == 0 and "tiny-qwen2" in table.out and "4-bit" in table.out
    listed = run("list", "--json").json()
    assert [m["slug"] for m in listed] == ["tiny-llama-4bit", "tiny-qwen2"]
    shown = run("show", "mlxctl-factory/tiny-qwen2", "--json").json()  # by repo id
    assert shown["slug"] == "tiny-qwen2"
    assert "chat" in shown["capabilities"]
    assert shown["kv_bytes_full_context"] == shown["kv_bytes_per_token"] * shown["context_length"]
    assert shown["options"]["preset"] is None and shown["options"]["max_batch"] == 8
    human = run("show", "tiny-q")  # by prefix
    assert human.code == 0 and "kv_bytes_per_token" in human.out and "capabilities" in human.out


def test_show_gives_the_options_of_its_config_section(
    run: Run, hf_cache: Path, isolated_home: Path
) -> None:
    run("init")
    (isolated_home / "config.yaml").write_text(
        "presets:\n  small-batch:\n    max_batch: 2\n"
        "models:\n  tiny-qwen2:\n    preset: small-batch\n    kv_bits: 8\n"
    )
    options = run("show", "tiny-qwen2", "--json").ok().json()["options"]
    assert (options["preset"], options["max_batch"], options["kv_bits"]) == ("small-batch", 2, 8)
    human = run("show", "tiny-qwen2").ok().out
    assert "small-batch" in human and "kv_bits=8" in human


def test_rm_dry_run_then_yes(run: Run, hf_cache: Path) -> None:
    run("init")
    repo = hf_cache / "models--mlxctl-factory--tiny-qwen2"
    size = sum(p.stat().st_size for p in (repo / "blobs").iterdir())
    plan = run("rm", "tiny-qwen2", "--dry-run", "--json")
    assert plan.code == 0
    assert plan.json()["freed_bytes"] >= size and plan.json()["blocked_by"] == []
    assert repo.exists() and open_registry().get("tiny-qwen2") is not None

    refused = run("rm", "tiny-qwen2", input="n\n")
    assert refused.code != 0 and repo.exists()
    done = run("rm", "tiny-qwen2", "-y")
    assert done.code == 0, done.err
    assert not repo.exists() and open_registry().get("tiny-qwen2") is None
    assert (hf_cache / "models--mlxctl-factory--tiny-llama-4bit").exists()


def test_register_path_is_never_deleted(
    run: Run, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "my-model"
    shutil.copytree(tiny_model_dirs["qwen2"], folder)
    assert run("register", str(folder), "--port", "8101").code == 0
    record = open_registry().get("my-model")
    assert record is not None and record.port == 8101 and record.source == "manual"
    assert run("rm", "my-model", "-y").code == 0
    assert folder.exists() and open_registry().get("my-model") is None
