"""Speculative decoding and the single-stream fast path on tiny random-weight models.

The reference is the same engine without speculation, run on the batch
(`fast_path=False`): what every request got before the fast path existed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlxctl.engine import mlxlm
from mlxctl.engine.cachetiers import CacheOptions
from mlxctl.engine.generator import Engine
from mlxctl.engine.mlxlm import Sampler
from mlxctl.engine.sampling import SeededSampler
from mlxctl.engine.speculative import PromptLookup, Proposal, Speculation, unavailable, verify
from mlxctl.engine.types import GenerationRequest, SamplingParams
from mlxctl.errors import InvalidInput
from mlxctl.factory import make_model
from tests.engine.streams import Result, collect, greedy, greedy_solo, run

TOKENS = 40


@pytest.fixture(scope="module")
def other_draft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A draft of the same vocabulary that rarely agrees with the target (another seed)."""
    return make_model(tmp_path_factory.mktemp("draft"), size="tiny", seed=7)


@pytest.fixture(scope="module")
def reference(tiny_model: Path) -> Callable[[GenerationRequest], Result]:
    engine = Engine(tiny_model, fast_path=False)
    engine.start()
    cache: dict[str, Result] = {}

    def answer(request: GenerationRequest) -> Result:
        key = repr(request)
        if key not in cache:
            cache[key] = run(collect(engine, request))
        return cache[key]

    yield answer  # type: ignore[misc]
    engine.close()


def _speculating(make_engine: Callable[..., Engine], **spec: object) -> Engine:
    return make_engine(speculation=Speculation(**spec))  # type: ignore[arg-type]


def test_prompt_lookup_keeps_greedy_output(
    make_engine: Callable[..., Engine], prompt: list[int], reference: Callable[..., Result]
) -> None:
    engine = _speculating(make_engine, prompt_lookup=True, num_draft_tokens=4)
    # A prompt that repeats itself gives the lookup something to propose.
    repeating = prompt + prompt[-12:] + prompt[-12:]
    ours = run(collect(engine, greedy(repeating, TOKENS)))
    assert ours.tokens == reference(greedy(repeating, TOKENS)).tokens
    assert ours.done is not None and ours.done.completion_tokens == TOKENS
    stats = engine.stats()
    assert stats["tokens_drafted_total"] > 0
    assert 0 <= stats["tokens_draft_accepted_total"] <= stats["tokens_drafted_total"]
    assert stats["tokens_generated_total"] == TOKENS


@pytest.mark.parametrize("draft", ["self", "other"])
def test_a_draft_model_keeps_greedy_output(
    make_engine: Callable[..., Engine],
    prompt: list[int],
    reference: Callable[..., Result],
    tiny_model: Path,
    other_draft: Path,
    draft: str,
) -> None:
    path = tiny_model if draft == "self" else other_draft
    engine = _speculating(make_engine, draft_model=path, num_draft_tokens=3)
    ours = run(collect(engine, greedy(prompt, TOKENS)))
    assert ours.tokens == reference(greedy(prompt, TOKENS)).tokens
    # The prompt cache kept by a speculative run serves the next one like any other.
    again = run(collect(engine, greedy(prompt, TOKENS)))
    assert again.tokens == ours.tokens and again.done is not None and again.done.cached_tokens
    stats = engine.stats()
    assert stats["tokens_drafted_total"] > 0
    if draft == "self":  # the target as its own draft: nearly every draft stands
        assert stats["tokens_draft_accepted_total"] >= 0.8 * stats["tokens_drafted_total"]


def test_a_seeded_speculative_run_repeats_itself(
    make_engine: Callable[..., Engine], prompt: list[int], tiny_model: Path
) -> None:
    engine = _speculating(make_engine, draft_model=tiny_model, prompt_lookup=True)
    request = GenerationRequest(prompt, TOKENS, SamplingParams(temperature=0.8, seed=11))
    first = run(collect(engine, request))
    second = run(collect(engine, request))
    other = run(collect(engine, GenerationRequest(prompt, TOKENS, SamplingParams(seed=12))))
    assert first.tokens == second.tokens and len(first.tokens) == TOKENS
    assert other.tokens != first.tokens
    stats = engine.stats()
    assert stats["tokens_drafted_total"] > 0 and stats["tokens_draft_accepted_total"] > 0


def test_speculation_steps_aside_when_a_second_request_comes(
    make_engine: Callable[..., Engine],
    prompt: list[int],
    reference: Callable[..., Result],
    tiny_model: Path,
) -> None:
    engine = _speculating(make_engine, draft_model=tiny_model, num_draft_tokens=2)
    second_prompt = prompt[:-3] + prompt[-2:]

    async def scenario() -> tuple[Result, Result]:
        first = asyncio.ensure_future(collect(engine, greedy(prompt, 120)))
        while engine.stats()["tokens_generated_total"] < 10:
            await asyncio.sleep(0.005)
        second = await collect(engine, greedy(second_prompt, 12))
        return await first, second

    first, second = run(scenario())
    # The lone request moved into the batch mid-stream and kept its greedy output.
    assert first.tokens == reference(greedy(prompt, 120)).tokens
    assert second.tokens == reference(greedy(second_prompt, 12)).tokens
    assert engine.stats()["batch_peak"] == 2


def test_the_fast_path_keeps_a_seeded_draw_across_the_handoff(
    make_engine: Callable[..., Engine], prompt: list[int], reference: Callable[..., Result]
) -> None:
    engine = make_engine()
    request = GenerationRequest(prompt, 60, SamplingParams(temperature=1.0, seed=5))

    async def scenario() -> Result:
        first = asyncio.ensure_future(collect(engine, request))
        while engine.stats()["tokens_generated_total"] < 5:
            await asyncio.sleep(0.005)
        await collect(engine, greedy(prompt[:-1], 8))
        return await first

    # Same seed, same tokens, whether it ran alone, joined the batch, or only batched.
    assert run(scenario()).tokens == reference(request).tokens


def test_prompt_lookup_proposes_what_followed_the_last_ngram() -> None:
    lookup = PromptLookup()
    history = [5, 6, 7, 8, 9, 1, 2, 6, 7]
    lookup.start(history)
    proposal = lookup.propose(history, 3, sampler=lambda x: x)
    assert proposal is not None and proposal.tokens.tolist() == [8, 9, 1]
    assert lookup.propose([1, 2, 3, 4], 3, sampler=lambda x: x) is None
    # A match running into the end repeats with its period; prompt lookup may draft `free`.
    loop = [4, 1, 2, 3, 1, 2, 3]
    lookup.start(loop)
    proposal = lookup.propose(loop, 3, sampler=lambda x: x, free=5)
    assert proposal is not None and proposal.tokens.tolist() == [1, 2, 3, 1, 2]
    assert proposal.free


def test_a_draft_with_another_vocabulary_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "vocab_size": 99}))
    engine = Engine(tiny_model, speculation=Speculation(draft_model=other))
    with pytest.raises(InvalidInput, match="vocabulary"):
        engine.start()


@pytest.mark.parametrize("drafter", ["model", "lookup"])
def test_rejection_sampling_keeps_the_targets_distribution(drafter: str) -> None:
    # First token out of a round = the draft if it stands, else the correction: ~ p.
    p = np.array([0.5, 0.2, 0.2, 0.1])
    q = np.array([0.1, 0.6, 0.1, 0.2]) if drafter == "model" else None
    logprobs = mx.array(np.log(np.stack([p, p])), dtype=mx.float32)
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    trials = 1500
    for trial in range(trials):
        sampler = SeededSampler(SamplingParams(temperature=1.0), 4, seed=trial)
        draft = int(rng.choice(4, p=q)) if q is not None else 1  # lookup: always token 1
        probs = mx.array(q[None], dtype=mx.float32) if q is not None else None
        proposal = Proposal(mx.array([draft], dtype=mx.uint32), probs, 1)
        n, following = verify(logprobs, proposal, sampler, position=trial)
        counts[draft if n == 1 else int(following.item())] += 1
    assert np.abs(counts / trials - p).max() < 0.04, counts / trials


def test_a_sliding_window_model_speculates_only_inside_its_window(tmp_path: Path) -> None:
    # gemma3_text tiny: a 32-token window; a short prompt crosses it while decoding.
    path = make_model(tmp_path / "swa", arch="gemma3_text", size="tiny")
    plain = Engine(path, fast_path=False)
    # Checkpoints off: a model that keeps them runs on the batch path, without speculation.
    speculating = Engine(
        path,
        speculation=Speculation(3, prompt_lookup=True),
        cache_options=CacheOptions(checkpoint_every=0),
    )
    for engine in (plain, speculating):
        engine.start()
    try:
        prompt = [5, 6, 7, 8, 5, 6, 7, 8, 5, 6]
        ours = run(collect(speculating, greedy(prompt, 40)))
        assert ours.tokens == run(collect(plain, greedy(prompt, 40))).tokens
        assert speculating.stats()["tokens_drafted_total"] > 0
    finally:
        plain.close()
        speculating.close()


def test_a_model_that_cannot_speculate_says_why_and_serves_plainly(
    tiny_model: Path, tmp_path: Path
) -> None:
    # The tiny models' heads (16) are below mlx's smallest KV quantization group: the
    # kv_bits reason is checked as such; checkpoints on a real sliding-window model.
    assert "drop kv_bits" in (unavailable(8, checkpointing=False) or "")
    spec = Speculation(3, prompt_lookup=True)
    swa = make_model(tmp_path / "swa", arch="gemma3_text", size="tiny")
    checkpointing = Engine(swa, speculation=spec)  # checkpoints on (the default)
    plain = Engine(tiny_model, speculation=spec)
    for engine in (checkpointing, plain):
        engine.start()
    try:
        assert "--checkpoint-every 0" in (checkpointing.speculation_off or "")
        prompt = [5, 6, 7, 8, 5, 6, 7, 8, 5, 6]
        assert len(run(collect(checkpointing, greedy(prompt, 12))).tokens) == 12
        assert checkpointing.stats()["tokens_drafted_total"] == 0
        assert plain.speculation_off is None
    finally:
        for engine in (checkpointing, plain):
            engine.close()


def test_the_fast_path_keeps_a_prompt_as_tightly_as_the_batch(tiny_model: Path) -> None:
    # A plain KV cache grows in 256-token steps: the kept entry holds only its tokens.
    fast, batch = Engine(tiny_model), Engine(tiny_model, fast_path=False)
    for engine in (fast, batch):
        engine.start()
    try:
        prompt = [(i * 7) % 50 + 3 for i in range(40)]
        first = {e: run(collect(e, greedy(prompt, 8))) for e in (fast, batch)}
        assert first[fast].tokens == first[batch].tokens
        kept = [e.stats()["prompt_cache"]["bytes"] for e in (fast, batch)]
        # The batch feeds the last reply token too; the fast path queues no pass after it.
        held = len(prompt) + len(first[fast].tokens)
        assert kept[0] * held == kept[1] * (held - 1) > 0
        turn = [*prompt, *first[fast].tokens, 9, 10, 11]
        second = {e: run(collect(e, greedy(turn, 8))) for e in (fast, batch)}
        assert second[fast].tokens == second[batch].tokens
        assert second[fast].done is not None and second[fast].done.cached_tokens >= len(prompt)
    finally:
        fast.close()
        batch.close()


class _Recording(PromptLookup):
    """Prompt lookup that notes the length of each draft it proposes."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def propose(
        self, history: list[int], k: int, sampler: Sampler, *, free: int | None = None
    ) -> Proposal | None:
        proposal = super().propose(history, k, sampler, free=free)
        if proposal is not None:
            self.lengths.append(proposal.count)
        return proposal


def _solo_tokens(tiny_model: Path, prompt: list[int], drafter: PromptLookup | None) -> list[int]:
    model, _ = mlxlm.load(tiny_model)
    solo = greedy_solo(model, prompt, TOKENS, drafter=drafter, num_draft_tokens=2)
    tokens: list[int] = []
    while len(tokens) < TOKENS:
        tokens += [r.token for r in solo.step()[1]]
    return tokens


def test_prompt_lookup_drafts_longer_in_a_copy_stretch_and_keeps_greedy_output(
    tiny_model: Path,
) -> None:
    # The prompt repeats a stretch the model then copies: whole drafts stand, and grow.
    stretch = [(i * 7) % 50 + 3 for i in range(16)]
    prompt = stretch * 4
    lookup = _Recording()
    assert _solo_tokens(tiny_model, prompt, lookup) == _solo_tokens(tiny_model, prompt, None)
    assert max(lookup.lengths) > 2
