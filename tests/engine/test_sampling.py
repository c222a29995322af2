"""Sampling: per-request seeds inside a batch, filters, penalties, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import mlx.core as mx
import pytest

from mlxctl.engine import sampling
from mlxctl.engine.generator import Engine
from mlxctl.engine.types import GenerationRequest, SamplingParams
from tests.engine.streams import Result, collect, greedy, run


def sampled(prompt: list[int], max_tokens: int, **params: Any) -> GenerationRequest:
    return GenerationRequest(prompt, max_tokens, SamplingParams(temperature=1.0, **params))


def test_same_seed_same_tokens(engine: Engine, prompt: list[int]) -> None:
    first = run(collect(engine, sampled(prompt, 24, seed=42))).tokens
    again = run(collect(engine, sampled(prompt, 24, seed=42))).tokens
    other = run(collect(engine, sampled(prompt, 24, seed=43))).tokens
    assert first == again
    assert first != other


def test_seed_holds_inside_a_busy_batch(engine: Engine, prompt: list[int]) -> None:
    alone = run(collect(engine, sampled(prompt, 24, seed=7))).tokens
    # The neighbour may not end early: EOS is barred, and it runs until the twins are done.
    no_eos = {token: -100.0 for token in engine.eos_token_ids}

    async def crowded() -> list[Result]:
        # A long unseeded neighbour draws random numbers at every step meanwhile.
        neighbour = engine.generate(sampled(prompt[:-2], 4000, logit_bias=no_eos))
        await anext(neighbour)
        twins = asyncio.gather(
            collect(engine, sampled(prompt, 24, seed=7)),
            collect(engine, sampled(prompt, 24, seed=7)),
        )
        async for _ in neighbour:
            if twins.done():
                break
        await neighbour.aclose()
        return list(await twins)

    twins = run(crowded())
    assert engine.stats()["batch_peak"] >= 3
    assert [t.tokens for t in twins] == [alone, alone]


def test_unseeded_requests_differ(engine: Engine, prompt: list[int]) -> None:
    runs = [run(collect(engine, sampled(prompt, 16))).tokens for _ in range(2)]
    assert runs[0] != runs[1]


def test_top_k_one_is_greedy(engine: Engine, prompt: list[int]) -> None:
    want = run(collect(engine, greedy(prompt, 16))).tokens
    assert run(collect(engine, sampled(prompt, 16, top_k=1, seed=1))).tokens == want
    # So is a tiny nucleus, and a min_p of 1.
    assert run(collect(engine, sampled(prompt, 16, top_p=1e-6, seed=2))).tokens == want
    assert run(collect(engine, sampled(prompt, 16, min_p=1.0, seed=3))).tokens == want


def test_keyed_sampler_follows_its_key() -> None:
    logprobs = mx.log(mx.array([[0.1, 0.2, 0.3, 0.4]]))
    draws = []
    for _ in range(2):
        sample = sampling.make_sampler(SamplingParams(temperature=1.0, seed=5), vocab_size=4)
        draws.append([sample(logprobs).item() for _ in range(64)])
    assert draws[0] == draws[1]
    assert len(set(draws[0])) > 1  # it does sample, not argmax
    assert sampling.make_sampler(SamplingParams(temperature=0.0), 4)(logprobs).item() == 3


def test_penalties_count_generated_tokens_only() -> None:
    params = SamplingParams(frequency_penalty=1.0, presence_penalty=0.5)
    (penalize,) = sampling.make_processors(params, prompt_len=3)
    logits = mx.zeros((1, 6))
    # Prompt [0, 1, 1], then generated [2, 2, 4].
    out = penalize(mx.array([0, 1, 1, 2, 2, 4]), logits)
    assert out.tolist() == [[0.0, 0.0, -2.5, 0.0, -1.5, 0.0]]
    # Nothing generated yet: nothing to penalize.
    assert penalize(mx.array([0, 1, 1]), logits).tolist() == [[0.0] * 6]


def test_bias_and_repetition_penalty() -> None:
    params = SamplingParams(logit_bias={2: 5.0}, repetition_penalty=2.0)
    processors = sampling.make_processors(params, prompt_len=1)
    assert len(processors) == 2
    logits = mx.array([[1.0, -1.0, 0.0, 4.0]])
    for processor in processors:
        logits = processor(mx.array([0, 1]), logits)
    assert logits.tolist() == [[0.5, -2.0, 5.0, 4.0]]
    assert sampling.make_processors(SamplingParams(), prompt_len=1) == []


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=-1.0),
        SamplingParams(temperature=float("nan")),
        SamplingParams(top_p=1.5),
        SamplingParams(top_k=-1),
        SamplingParams(min_p=2.0),
        SamplingParams(repetition_penalty=0.0),
        SamplingParams(frequency_penalty=float("inf")),
        SamplingParams(top_logprobs=-1),
        SamplingParams(logit_bias={99: 1.0}),
        SamplingParams(logit_bias={1: float("nan")}),
    ],
)
def test_validate_rejects(params: SamplingParams) -> None:
    with pytest.raises(ValueError):
        sampling.validate(params, vocab_size=10)


def test_validate_accepts_defaults_and_wide_top_k() -> None:
    sampling.validate(SamplingParams(), vocab_size=10)
    sampling.validate(SamplingParams(top_k=50, logit_bias={9: -100.0}), vocab_size=10)
