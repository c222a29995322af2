"""The factory's trained target + draft pair: training time and greedy acceptance.

    LD_PRELOAD=.../libopenblas.so.0 .venv/bin/python bench/train_pair.py [--out DIR] [--seed N]

Trains the default `TrainPlan` into DIR (default MLXCTL_HOME/factory/pair, the folder
`mlxctl dev train-pair` uses), or reuses it when DIR already holds that plan's result.
Then measures, on the same held-out rewrite prompts, the trained draft against the
reference in the same run: an untrained draft of the same shape (random weights), which
is what a draft model means on factory models without training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlxctl.factory.train import TrainPlan, greedy_acceptance, train_model, train_pair
from mlxctl.factory.traindata import edit_examples
from mlxctl.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="training folder (cached between runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = args.out or Settings.from_env().home / "factory" / "pair"
    plan = TrainPlan(seed=args.seed)

    started = time.perf_counter()
    report = train_pair(folder, plan, log=lambda line: print(line, flush=True))
    took = time.perf_counter() - started
    print(f"train_pair returned in {took:.1f}s (0 training when cached)")

    examples = edit_examples(plan.eval_prompts, seed=plan.seed, held_out=True)
    with tempfile.TemporaryDirectory() as tmp:
        # The same draft shape and tokenizer, random weights: what "a draft" was before.
        random_draft = Path(tmp) / "draft"
        train_model(random_draft, plan.draft, plan, 0)
        untrained = greedy_acceptance(
            report.target, random_draft, examples, tokens=plan.eval_tokens, block=plan.draft_block
        )

    trained = report.acceptance
    print()
    print(f"target: {report.target_parameters:,} parameters, trained {report.target_seconds:.0f}s")
    print(f"        loss {report.target_loss[0]:.2f} -> {report.target_loss[1]:.2f}")
    print(f"draft:  {report.draft_parameters:,} parameters, trained {report.draft_seconds:.0f}s")
    print(f"        loss {report.draft_loss[0]:.2f} -> {report.draft_loss[1]:.2f}")
    print(f"held-out rewrite prompts: {len(examples)}, {plan.eval_tokens} greedy tokens each")
    print("| draft | token agreement | acceptance (blocks of 4) | accepted per draft |")
    print("| --- | --- | --- | --- |")
    for name, a in (("trained", trained), ("untrained (reference)", untrained)):
        print(
            f"| {name} | {a.token_agreement:.0%} | {a.acceptance_rate:.0%} | "
            f"{a.mean_accepted:.2f} |"
        )
    print(f"target copies its prompt: {trained.context_copy:.0%} of its 4-grams occur there")


if __name__ == "__main__":
    main()
