"""The trained pair, on toy plans: loss goes down, runs repeat, results are cached.

The real plan (minutes of CPU) runs in bench/, never here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxctl.engine import mlxlm
from mlxctl.factory.induction import plant_induction
from mlxctl.factory.tokenizer import corpus
from mlxctl.factory.train import ModelShape, TrainPlan, greedy_acceptance, train_model, train_pair
from mlxctl.factory.traindata import HELD_OUT_MODULES, edit_examples

TOY = TrainPlan(
    target=ModelShape(32, 1, 2, 1, 64),
    draft=ModelShape(16, 1, 2, 1, 32),
    target_steps=12,
    draft_steps=3,
    batch=4,
    seq_len=128,
    edit_pool=32,
    eval_prompts=2,
    eval_tokens=6,
    induction=False,  # a 1-layer toy has no room for the circuit: tested on its own below
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pair")
    train_pair(out, TOY)
    return out


def test_loss_goes_down(tmp_path: Path) -> None:
    losses, seconds = train_model(tmp_path, TOY.target, TOY, 12)
    assert len(losses) == 12 and seconds > 0
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2


def test_pair_shares_a_tokenizer_and_is_cached(pair: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (pair / "target" / name).read_bytes() == (pair / "draft" / name).read_bytes()
    weights = pair / "target" / "model.safetensors"
    stamp = (weights.stat().st_mtime_ns, (pair / "train.json").stat().st_mtime_ns)
    report = train_pair(pair, TOY)  # the same plan: read back, not trained again
    assert (weights.stat().st_mtime_ns, (pair / "train.json").stat().st_mtime_ns) == stamp
    assert report.plan == TOY and report.target == pair / "target"
    assert report.target_parameters > report.draft_parameters > 0
    assert 0.0 <= report.acceptance.acceptance_rate <= 1.0
    assert report.target_loss[1] < report.target_loss[0]


def test_same_plan_same_weights(pair: Path, tmp_path: Path) -> None:
    train_model(tmp_path, TOY.draft, TOY, TOY.draft_steps)
    again = (tmp_path / "model.safetensors").read_bytes()
    assert again == (pair / "draft" / "model.safetensors").read_bytes()


def test_a_changed_plan_or_an_old_report_trains_again(pair: Path, tmp_path: Path) -> None:
    shutil.copytree(pair, tmp_path, dirs_exist_ok=True)
    other = TrainPlan(**{**TOY.__dict__, "draft_steps": 1, "target_steps": 1})
    report = train_pair(tmp_path, other)
    assert report.plan == other != TOY
    record = json.loads((tmp_path / "train.json").read_text())
    for field in ("snippet_lines", "repeat_fraction"):  # as older versions wrote it
        stale = json.loads(json.dumps(record))
        del stale["plan"][field]
        (tmp_path / "train.json").write_text(json.dumps(stale))
        stamp = (tmp_path / "target" / "model.safetensors").stat().st_mtime_ns
        assert train_pair(tmp_path, other).plan == other
        assert (tmp_path / "target" / "model.safetensors").stat().st_mtime_ns != stamp


def test_a_model_agrees_with_itself(pair: Path) -> None:
    examples = edit_examples(2, seed=3, held_out=True)
    same = greedy_acceptance(pair / "target", pair / "target", examples, tokens=8, block=4)
    assert same.token_agreement == same.acceptance_rate == 1.0
    assert same.mean_accepted == (4 + 3) / 2  # 8 tokens: a draft of 4, the bonus, then 3


def test_edit_examples_rename_one_name_and_repeat() -> None:
    first = edit_examples(20, seed=5)
    assert first == edit_examples(20, seed=5) != edit_examples(20, seed=6)
    for example in first:
        old, new = re.findall(r"`(\w+)`", example.instruction)
        assert re.search(rf"\b{old}\b", example.snippet)
        assert example.answer == re.sub(rf"\b{old}\b", new, example.snippet)
        assert example.reply().startswith("```python\n")


def test_held_out_snippets_are_not_in_the_training_text() -> None:
    training = "\n".join(corpus())
    held_out = edit_examples(10, seed=0, held_out=True)
    assert not set(HELD_OUT_MODULES) & {"json", "typing", "pathlib"}
    assert all(example.snippet not in training for example in held_out)


def _attention(model: Any) -> dict[str, np.ndarray]:
    params = tree_flatten(model.parameters())
    return {k: np.array(v) for k, v in params if ".layers.0." in k or ".layers.1." in k}


def test_a_planted_target_copies_untrained_and_training_keeps_the_circuit(
    tmp_path: Path,
) -> None:
    plan = TrainPlan(**{**TOY.__dict__, "target": ModelShape(192, 2, 4, 2, 32), "induction": True})
    train_model(tmp_path / "planted", plan.target, plan, 0)
    model: Any = mlxlm.load(tmp_path / "planted")[0]
    words = np.random.default_rng(1).integers(10, 1000, size=40)
    logits = model(mx.array(np.concatenate([words, words])[None]))
    guesses = np.array(mx.argmax(logits[0, 40:-1], axis=-1))
    assert (guesses == words[1:]).mean() > 0.9  # the second time round, each next word

    train_model(tmp_path / "trained", plan.target, plan, 2)
    trained, _ = mlxlm.load(tmp_path / "trained")
    before, after = _attention(model), _attention(trained)
    assert before.keys() == after.keys() and any("self_attn" in k for k in before)
    for name, value in before.items():
        if "self_attn" in name:
            assert np.array_equal(value, after[name]), name
        elif name.endswith("mlp.up_proj.weight"):
            assert not np.array_equal(value, after[name]), name


def test_the_circuit_needs_room(pair: Path) -> None:
    model, _ = mlxlm.load(pair / "target")
    config = json.loads((pair / "target" / "config.json").read_text())
    with pytest.raises(ValueError, match="needs 2 kv heads"):
        plant_induction(model, config, seed=0)
