"""`mlxctl dev make-model` for every kind, and `mlxctl dev train-pair`, through the entry point."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

from mlxctl.factory import train
from tests.cli.runner import Run


def _config(path: Path) -> dict[str, object]:
    return dict(json.loads((path / "config.json").read_text()))


@pytest.mark.parametrize(
    ("kind", "arch", "architecture"),
    [
        ("chat", "qwen3_5", "Qwen3_5ForCausalLM"),
        ("chat", "gemma3_text", "Gemma3ForCausalLM"),
        ("vision", "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
        ("embedding", "bert", "BertModel"),
        ("rerank", "bert", "BertForSequenceClassification"),
    ],
)
def test_make_model_writes_each_kind(
    run: Run, tmp_path: Path, kind: str, arch: str, architecture: str
) -> None:
    result = run("dev", "make-model", "x", "--kind", kind, "--arch", arch, "--out", str(tmp_path))
    assert result.code == 0, result.err
    assert f"{kind} model {arch}/tiny" in result.out
    assert _config(tmp_path)["architectures"] == [architecture]


def test_made_models_land_where_init_finds_them(run: Run, isolated_home: Path) -> None:
    for name, kind, arch in [("hybrid", "chat", "qwen3_5"), ("sliding", "chat", "gemma3_text")]:
        made = run("dev", "make-model", name, "--kind", kind, "--arch", arch)
        assert made.code == 0, made.err
    vision = run("dev", "make-model", "eyes", "--kind", "vision")
    assert vision.code == 0 and "mlxctl-factory/eyes" in vision.out
    cache = isolated_home.parent / "hf-cache"
    assert (cache / "models--mlxctl-factory--eyes" / "refs" / "main").is_file()
    added = {m["slug"]: m for m in run("init", "--json").json()["added"]}
    assert added["hybrid"]["model_type"] == "qwen3_5"
    assert added["sliding"]["model_type"] == "gemma3_text"
    assert added["hybrid"]["repo_id"] == "mlxctl-factory/hybrid"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "vision", "--arch", "qwen2"], "not a vision architecture"),
        (["--kind", "rerank", "--quantize", "4"], "apply to chat models"),
        (["--arch", "qwen3_5", "--size", "0.5b"], "qwen3_5 comes in tiny, small"),
        (["--kind", "vision", "--size", "0.5b"], "Unknown size"),
    ],
)
def test_make_model_refuses_what_does_not_exist(
    run: Run, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("dev", "make-model", "x", *args, "--out", str(tmp_path))
    assert result.code == 2
    assert message in result.err


def test_train_pair_trains_once_and_lays_out_both(
    run: Run, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A toy plan at the seam: the real one takes minutes and belongs to bench/.
    toy = {
        "target": train.ModelShape(32, 1, 2, 1, 64),
        "draft": train.ModelShape(16, 1, 2, 1, 32),
        "batch": 2,
        "seq_len": 32,
        "edit_pool": 8,
        "eval_prompts": 1,
        "eval_tokens": 4,
        "induction": False,
    }
    monkeypatch.setattr(train, "TrainPlan", functools.partial(train.TrainPlan, **toy))
    args = ("dev", "train-pair", "duo", "--target-steps", "2", "--draft-steps", "1", "--json")
    first = run(*args)
    assert first.code == 0, first.err
    report = first.json()
    assert report["plan"]["target_steps"] == 2 and report["plan"]["draft_steps"] == 1
    assert 0.0 <= report["acceptance"]["acceptance_rate"] <= 1.0
    trained = isolated_home / "factory" / "duo"
    assert Path(report["target"]) == trained / "target"
    cache = isolated_home.parent / "hf-cache"
    for role in ("target", "draft"):
        assert (cache / f"models--mlxctl-factory--duo-{role}" / "refs" / "main").is_file()
    again = run(*args)
    assert again.code == 0 and again.json()["target_seconds"] == report["target_seconds"]


def test_vision_without_mlx_vlm_says_how_to_install_it(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlx_vlm", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "mlx_vlm.utils", None)
    result = run("dev", "make-model", "x", "--kind", "vision", "--out", str(tmp_path))
    assert result.code == 1
    assert "pip install 'mlxctl[vision]'" in result.err
