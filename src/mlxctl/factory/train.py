"""A briefly trained target + draft pair, for speculative-decoding figures.

Random weights never agree with each other, so a draft model on random weights accepts
nothing. `train_pair` trains two qwen2 models that share one tokenizer — a small target
and a tiny draft — for a few minutes on this CPU, on `traindata` (the tokenizer corpus
of stdlib sources, "rewrite this code with one change" chats, and corpus windows said
twice). The target starts from a planted induction circuit (`induction.py`), kept frozen
while the rest trains, so it copies its context as a real model asked to rewrite code
does; minutes of training alone never teach a model this small to copy.

It uses mlx-lm's model classes (through `model.build_model`) and `mlx.optimizers`. Runs
are deterministic from `TrainPlan.seed` (a fixed number of steps, never a time budget)
and cached: `train.json` beside the two models records the plan, and a second call with
the same plan returns the recorded report without training again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import numpy.typing as npt
from mlx.nn import losses as nn_losses
from mlx.nn.layers.base import Module
from mlx.nn.utils import value_and_grad
from tokenizers import Tokenizer

from mlxctl.engine import mlxlm
from mlxctl.factory.induction import plant_induction
from mlxctl.factory.model import build_model, model_config
from mlxctl.factory.tokenizer import TokenizerInfo, corpus, write_tokenizer
from mlxctl.factory.traindata import EditExample, edit_examples

__all__ = [
    "Acceptance",
    "ModelShape",
    "PairReport",
    "TrainPlan",
    "greedy_acceptance",
    "train_model",
    "train_pair",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


@dataclass(frozen=True)
class TrainPlan:
    """Everything a trained pair depends on; the cache key of `train_pair`."""

    seed: int = 0
    target: ModelShape = ModelShape(192, 4, 4, 2, 512)
    draft: ModelShape = ModelShape(64, 2, 4, 2, 128)
    target_steps: int = 400
    draft_steps: int = 400
    batch: int = 8
    seq_len: int = 192
    learning_rate: float = 3e-3
    edit_fraction: float = 0.5  # share of rows that are rewrite chats
    repeat_fraction: float = 0.3  # share of rows that repeat a corpus window (copy practice)
    induction: bool = True  # the target starts from a planted copying circuit (induction.py)
    answer_loss_only: bool = False  # rewrite chats: learn only the answer, not the prompt
    snippet_lines: tuple[int, int] = (3, 8)  # shortest and longest snippet to rewrite
    bpe_vocab: int = 2048
    edit_pool: int = 4000  # distinct rewrite chats to draw rows from
    eval_prompts: int = 16
    eval_tokens: int = 48
    draft_block: int = 4  # tokens per draft in the simulated speculative decode


_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainPlan))


@dataclass(frozen=True)
class Acceptance:
    """Greedy draft-vs-target agreement on held-out rewrite prompts."""

    token_agreement: float  # P(draft's next token == target's) along the target's output
    acceptance_rate: float  # accepted / drafted, drafting `block` tokens at a time
    block: int
    mean_accepted: float  # accepted tokens per draft of `block`
    context_copy: float  # share of the target's 4-grams that occur in its prompt


@dataclass(frozen=True)
class PairReport:
    target: Path
    draft: Path
    target_parameters: int
    draft_parameters: int
    target_seconds: float
    draft_seconds: float
    target_loss: tuple[float, float]  # (first steps, last steps), mean cross-entropy
    draft_loss: tuple[float, float]
    acceptance: Acceptance
    plan: TrainPlan = field(default_factory=TrainPlan)


def _config(shape: ModelShape, tokens: TokenizerInfo) -> dict[str, Any]:
    """A qwen2 config of `shape` whose vocabulary and special ids are `tokens`'."""
    config = model_config("qwen2", "tiny")
    return config | {
        "bos_token_id": tokens.pad_token_id,
        "eos_token_id": tokens.eos_token_id,
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": 4096,
        "max_window_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "sliding_window": 4096,
        "vocab_size": tokens.size,
    }


class _Rows:
    """Training rows: (inputs, targets, mask) batches drawn from a seeded generator."""

    def __init__(self, tokenizer: Any, plan: TrainPlan, pad: int) -> None:
        self.stream = _corpus_stream(tokenizer.backend_tokenizer.to_str(), tokenizer.eos_token_id)
        chats = [
            _chat_tokens(tokenizer, example)
            for example in edit_examples(
                plan.edit_pool,
                seed=plan.seed,
                min_lines=plan.snippet_lines[0],
                max_lines=plan.snippet_lines[1],
            )
        ]
        # Only whole chats: a cut-off answer would teach stopping mid-copy.
        self.edits = [chat for chat in chats if len(chat[0]) <= plan.seq_len + 1]
        self.plan = plan
        self.pad = pad
        self.rng = np.random.default_rng(plan.seed)

    def batch(self) -> tuple[mx.array, mx.array, mx.array]:
        length = self.plan.seq_len + 1
        rows = np.full((self.plan.batch, length), self.pad, dtype=np.int32)
        mask = np.zeros((self.plan.batch, length - 1), dtype=np.float32)
        for i in range(self.plan.batch):
            draw = self.rng.random()
            if draw < self.plan.repeat_fraction:
                rows[i] = self._repeat(length)
                mask[i] = 1.0
            elif draw < self.plan.repeat_fraction + self.plan.edit_fraction and self.edits:
                tokens, answer = self.edits[int(self.rng.integers(len(self.edits)))]
                rows[i, : len(tokens)] = tokens
                # Loss on the answer only: the rows exist to teach copying the prompt.
                mask[i, (answer - 1 if self.plan.answer_loss_only else 0) : len(tokens) - 1] = 1.0
            else:
                start = int(self.rng.integers(len(self.stream) - length))
                rows[i] = self.stream[start : start + length]
                mask[i] = 1.0
        return mx.array(rows[:, :-1]), mx.array(rows[:, 1:]), mx.array(mask)

    def _repeat(self, length: int) -> npt.NDArray[np.int32]:
        """A corpus window said twice, then more text: the second copy is learned by copying.

        The window's length varies, so only looking back at what followed the same tokens
        earlier (an induction head) predicts the copy, never a fixed offset.
        """
        span = int(self.rng.integers(8, length // 2 + 1))
        first = int(self.rng.integers(len(self.stream) - span))
        rest = int(self.rng.integers(len(self.stream) - length))
        window = self.stream[first : first + span]
        return np.concatenate([window, window, self.stream[rest : rest + length - 2 * span]])


@functools.lru_cache(maxsize=2)
def _corpus_stream(tokenizer_json: str, eos: int) -> npt.NDArray[np.int32]:
    """The whole corpus as one token stream, documents ended by `eos` (cached: ~0.5M tokens)."""
    encoded = Tokenizer.from_str(tokenizer_json).encode_batch(corpus(), add_special_tokens=False)
    return np.array([t for e in encoded for t in [*e.ids, eos]], dtype=np.int32)


def _chat_tokens(tokenizer: Any, example: EditExample) -> tuple[list[int], int]:
    """The whole chat's tokens and where the assistant's answer starts."""
    messages = [*example.messages(), {"role": "assistant", "content": example.reply()}]
    tokens = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    prompt = tokenizer.apply_chat_template(
        example.messages(), tokenize=True, return_dict=False, add_generation_prompt=True
    )
    return list(tokens), len(prompt)


def _loss(model: Any, inputs: mx.array, targets: mx.array, mask: mx.array) -> mx.array:
    logits = model(inputs)
    losses = nn_losses.cross_entropy(logits, targets, reduction="none")
    return (losses * mask).sum() / mx.maximum(mask.sum(), 1.0)


def train_model(
    out_dir: Path,
    shape: ModelShape,
    plan: TrainPlan,
    steps: int,
    *,
    log: Log | None = None,
) -> tuple[list[float], float]:
    """Train one qwen2 model of `shape` for `steps` and save it to `out_dir`.

    Returns the loss of every step and the seconds spent training. The tokenizer is
    written first, so two models trained with one plan share it byte for byte.
    """
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = write_tokenizer(
        out_dir, family="chatml", vocab_size=plan.bpe_vocab, model_max_length=4096
    )
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    config = _config(shape, info)
    mx.random.seed(plan.seed)
    model: Any = build_model(config, seed=plan.seed, used_vocab=info.size)
    if plan.induction and shape == plan.target:
        plant_induction(model, config, seed=plan.seed)
        for layer in model.model.layers[:2]:  # the circuit stays as planted (induction.py)
            layer.self_attn.freeze()
    rows = _Rows(tokenizer, plan, info.pad_token_id)

    warmup = max(1, steps // 20)
    schedule = optim.join_schedules(
        [
            optim.linear_schedule(plan.learning_rate / 10, plan.learning_rate, warmup),
            optim.cosine_decay(plan.learning_rate, max(1, steps - warmup), plan.learning_rate / 20),
        ],
        [warmup],
    )
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=0.01)
    loss_and_grad = value_and_grad(model, _loss)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(inputs: mx.array, targets: mx.array, mask: mx.array) -> mx.array:
        loss, grads = loss_and_grad(model, inputs, targets, mask)
        optimizer.update(model, grads)
        return cast(mx.array, loss)

    losses: list[float] = []
    started = time.perf_counter()
    for i in range(steps):
        loss = step(*rows.batch())
        mx.eval(state, loss)
        losses.append(cast(float, loss.item()))
        if log is not None and (i % 50 == 0 or i == steps - 1):
            log(f"step {i + 1}/{steps}: loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - started

    for stale in out_dir.glob("model*.safetensors*"):
        stale.unlink()
    mlxlm.save_weights(out_dir, cast(Module, model))
    mlxlm.save_config(config, out_dir / "config.json")
    generation = {
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": list(info.eos_token_ids),
        "pad_token_id": info.pad_token_id,
    }
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return losses, seconds


def greedy_acceptance(
    target_dir: Path, draft_dir: Path, examples: list[EditExample], *, tokens: int, block: int
) -> Acceptance:
    """How often the draft's greedy token equals the target's, on `examples`.

    The target decodes greedily; the draft reads the same text (teacher forcing). Until
    its first miss a draft continues exactly as the target did, so the agreement vector
    also gives the tokens a `block`-token greedy speculative decode would accept.
    """
    target, wrapper = mlxlm.load(target_dir)
    draft, _ = mlxlm.load(draft_dir)
    tokenizer: Any = wrapper
    agree_total = agree_count = accepted = drafted = drafts = 0
    copied = grams = 0
    for example in examples:
        prompt = tokenizer.apply_chat_template(example.messages(), add_generation_prompt=True)
        out = [r.token for r in mlxlm.stream_generate(target, tokenizer, prompt, tokens)]
        logits = cast(Any, draft)(mx.array([prompt + out]))[0, len(prompt) - 1 : -1]
        agree = cast(list[bool], (mx.argmax(logits, axis=-1) == mx.array(out)).tolist())
        agree_total += len(agree)
        agree_count += sum(agree)
        i = 0
        while i < len(agree):
            run = 0
            while run < block and i + run < len(agree) and agree[i + run]:
                run += 1
            accepted += run
            drafted += min(block, len(agree) - i)
            drafts += 1
            i += run + 1  # the target's own token follows the accepted run
        seen = {tuple(prompt[j : j + 4]) for j in range(len(prompt) - 3)}
        for j in range(len(out) - 3):
            grams += 1
            copied += tuple(out[j : j + 4]) in seen
    return Acceptance(
        token_agreement=agree_count / max(1, agree_total),
        acceptance_rate=accepted / max(1, drafted),
        block=block,
        mean_accepted=accepted / max(1, drafts),
        context_copy=copied / max(1, grams),
    )


def _report(path: Path) -> PairReport | None:
    """The report a finished run left, or None (none, unreadable, or from an older plan)."""
    try:
        data = json.loads(path.read_text())
        fields = data["plan"]
        if set(fields) != _PLAN_FIELDS:
            return None  # an older or newer plan: its defaults may differ from ours
        plan = TrainPlan(
            **{
                **fields,
                "target": ModelShape(**fields["target"]),
                "draft": ModelShape(**fields["draft"]),
                "snippet_lines": tuple(fields["snippet_lines"]),
            }
        )
        return PairReport(
            target=path.parent / "target",
            draft=path.parent / "draft",
            target_parameters=data["target_parameters"],
            draft_parameters=data["draft_parameters"],
            target_seconds=data["target_seconds"],
            draft_seconds=data["draft_seconds"],
            target_loss=(data["target_loss"][0], data["target_loss"][1]),
            draft_loss=(data["draft_loss"][0], data["draft_loss"][1]),
            acceptance=Acceptance(**data["acceptance"]),
            plan=plan,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _ends(losses: list[float]) -> tuple[float, float]:
    n = max(1, len(losses) // 10)
    return (sum(losses[:n]) / n, sum(losses[-n:]) / n)


def train_pair(
    out_dir: Path, plan: TrainPlan | None = None, *, log: Log | None = None
) -> PairReport:
    """Train (or reuse) `out_dir/target` and `out_dir/draft`; report sizes, times, agreement.

    The report is written to `out_dir/train.json` last: a run killed half-way leaves no
    report, and the next call trains again from scratch.
    """
    plan = plan or TrainPlan()
    out_dir = Path(out_dir)
    record = out_dir / "train.json"
    cached = _report(record)
    if cached and cached.plan == plan and cached.target.is_dir() and cached.draft.is_dir():
        return cached
    record.unlink(missing_ok=True)
    for stale in (out_dir / "target", out_dir / "draft"):
        shutil.rmtree(stale, ignore_errors=True)

    def tagged(tag: str) -> Log | None:
        return None if log is None else (lambda line: log(f"{tag}: {line}"))

    target_losses, target_seconds = train_model(
        out_dir / "target", plan.target, plan, plan.target_steps, log=tagged("target")
    )
    draft_losses, draft_seconds = train_model(
        out_dir / "draft", plan.draft, plan, plan.draft_steps, log=tagged("draft")
    )
    examples = edit_examples(plan.eval_prompts, seed=plan.seed, held_out=True)
    acceptance = greedy_acceptance(
        out_dir / "target",
        out_dir / "draft",
        examples,
        tokens=plan.eval_tokens,
        block=plan.draft_block,
    )
    report = PairReport(
        target=out_dir / "target",
        draft=out_dir / "draft",
        target_parameters=_parameters(out_dir / "target"),
        draft_parameters=_parameters(out_dir / "draft"),
        target_seconds=target_seconds,
        draft_seconds=draft_seconds,
        target_loss=_ends(target_losses),
        draft_loss=_ends(draft_losses),
        acceptance=acceptance,
        plan=plan,
    )
    data = asdict(report)
    data["target"], data["draft"] = "target", "draft"
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(record)
    return report


def _parameters(path: Path) -> int:
    model, _ = mlxlm.load(path)
    return mlxlm.total_parameters(model)
