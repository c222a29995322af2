"""The llama.cpp engine keeps `Engine`'s contract: events, stops, cancels, limits, reuse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

from mlxctl.engine.checks import ContextOverflow
from mlxctl.engine.host import QueueFull
from mlxctl.engine.llamacpp import LlamaCppEngine
from mlxctl.engine.types import (
    DoneEvent,
    GenerationRequest,
    SamplingParams,
    TokenEvent,
)
from mlxctl.factory.gguf import make_gguf

GREEDY = SamplingParams(temperature=0)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppEngine]:
    folder = tmp_path_factory.mktemp("llamacpp")
    make_gguf(folder, arch="qwen2", quant="Q8_0")
    eng = LlamaCppEngine(folder, max_batch=2, max_queue=1, context_length=512)
    eng.start()
    yield eng
    eng.close()


async def _collect(
    engine: LlamaCppEngine, request: GenerationRequest
) -> tuple[list[TokenEvent], DoneEvent]:
    tokens: list[TokenEvent] = []
    async for event in engine.generate(request):
        if isinstance(event, DoneEvent):
            return tokens, event
        tokens.append(event)
    raise AssertionError("no DoneEvent")


def _prompt(engine: LlamaCppEngine, text: str = "Tell me a story about a cat") -> list[int]:
    return list(engine.tokenizer.encode(text))


def test_generates_tokens_then_done_with_usage(engine: LlamaCppEngine) -> None:
    prompt = _prompt(engine)
    tokens, done = asyncio.run(_collect(engine, GenerationRequest(prompt, 8, GREEDY)))
    assert done.completion_tokens == len(tokens) >= 1
    assert done.prompt_tokens == len(prompt)
    assert done.finish_reason in ("stop", "length")
    if done.finish_reason == "length":
        assert len(tokens) == 8
    text = "".join(t.text for t in tokens)
    ids = [t.token for t in tokens if t.token not in engine.eos_token_ids]
    assert text == engine.tokenizer.decode(ids)


def test_greedy_is_deterministic_and_reuses_the_prompt_prefix(engine: LlamaCppEngine) -> None:
    prompt = _prompt(engine, "A long shared prefix for the cache, then one question")
    first = asyncio.run(_collect(engine, GenerationRequest(prompt, 6, GREEDY)))
    second = asyncio.run(_collect(engine, GenerationRequest(prompt, 6, GREEDY)))
    assert [t.token for t in first[0]] == [t.token for t in second[0]]
    assert second[1].cached_tokens == len(prompt) - 1


def test_seeded_sampling_repeats(engine: LlamaCppEngine) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=7)
    prompt = _prompt(engine)
    a = asyncio.run(_collect(engine, GenerationRequest(prompt, 10, params)))
    b = asyncio.run(_collect(engine, GenerationRequest(prompt, 10, params)))
    assert [t.token for t in a[0]] == [t.token for t in b[0]]


def test_stop_token_ids_end_with_stop(engine: LlamaCppEngine) -> None:
    prompt = _prompt(engine)
    tokens, _ = asyncio.run(_collect(engine, GenerationRequest(prompt, 6, GREEDY)))
    stop = tokens[2].token
    request = GenerationRequest(prompt, 6, GREEDY, stop_token_ids=[[stop]])
    cut, done = asyncio.run(_collect(engine, request))
    assert done.finish_reason == "stop"
    assert cut[-1].token == stop and cut[-1].text == ""


def test_logit_bias_forces_a_token(engine: LlamaCppEngine) -> None:
    target = engine.tokenizer.encode("cat", add_special_tokens=False)[0]
    params = SamplingParams(temperature=0, logit_bias={target: 100.0})
    tokens, _ = asyncio.run(_collect(engine, GenerationRequest(_prompt(engine), 3, params)))
    assert {t.token for t in tokens} == {target}


def test_logprobs_are_reported(engine: LlamaCppEngine) -> None:
    params = SamplingParams(temperature=0, logprobs=True, top_logprobs=3)
    tokens, _ = asyncio.run(_collect(engine, GenerationRequest(_prompt(engine), 2, params)))
    first = tokens[0]
    assert first.logprob is not None and first.logprob <= 0
    assert len(first.top_logprobs) == 3 and first.top_logprobs[0][0] == first.token


def test_context_overflow_and_bad_requests(engine: LlamaCppEngine) -> None:
    async def submit(request: GenerationRequest) -> None:
        async for _ in engine.generate(request):
            break

    with pytest.raises(ContextOverflow):
        asyncio.run(submit(GenerationRequest([1] * engine.context_length, 4)))
    with pytest.raises(ValueError):
        asyncio.run(submit(GenerationRequest([], 4)))
    with pytest.raises(ValueError):
        asyncio.run(submit(GenerationRequest([engine.vocab_size], 4)))


def _slow() -> Callable[[Any, Any], Any]:
    """A processor that makes each token take 10 ms, so requests stay in flight."""

    def slow(tokens: Any, logits: Any) -> Any:
        time.sleep(0.01)
        return logits

    return slow


def test_cancel_frees_the_engine_and_queue_full(engine: LlamaCppEngine) -> None:
    async def scenario() -> None:
        prompt = _prompt(engine)
        long = GenerationRequest(prompt, 400, GREEDY, logits_processors=[_slow])
        gens = [engine.generate(long) for _ in range(3)]  # 2 decoding + 1 queued
        first = await gens[0].__anext__()
        assert isinstance(first, TokenEvent)
        waiting = [asyncio.ensure_future(g.__anext__()) for g in gens[1:]]
        await asyncio.sleep(0.05)  # both submitted
        with pytest.raises(QueueFull):
            await engine.generate(long).__anext__()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await gens[0].aclose()
        # Cancels reach the thread between tokens; then the engine is free again.
        for _ in range(200):
            stats = engine.stats()
            if stats["active"] == 0 and stats["queue_depth"] == 0:
                break
            await asyncio.sleep(0.01)
        _, done = await asyncio.wait_for(
            _collect(engine, GenerationRequest(prompt, 2, GREEDY)), timeout=30
        )
        assert done.completion_tokens >= 1

    asyncio.run(scenario())
    stats = engine.stats()
    assert stats["engine"] == "llama.cpp" and stats["cancelled_total"] >= 1
    assert stats["queue_depth"] == 0


def test_requests_decode_together_in_one_batch(engine: LlamaCppEngine) -> None:
    async def scenario() -> None:
        slow = GenerationRequest(_prompt(engine), 30, GREEDY, logits_processors=[_slow])
        other = GenerationRequest(_prompt(engine, "Another question"), 30, GREEDY)
        a, b = engine.generate(slow), engine.generate(other)
        first_a, first_b = await a.__anext__(), await b.__anext__()
        assert isinstance(first_a, TokenEvent) and isinstance(first_b, TokenEvent)
        assert engine.stats()["active"] == 2  # both in the batch, neither waited for the other
        rest = [e async for e in a], [e async for e in b]
        for events in rest:
            done = events[-1]
            assert isinstance(done, DoneEvent) and done.finish_reason in ("stop", "length")

    asyncio.run(scenario())


def test_a_full_context_ends_the_longest_sequence(tmp_path: Any) -> None:
    make_gguf(tmp_path, arch="qwen2", quant="Q8_0")
    small = LlamaCppEngine(tmp_path, max_batch=2, max_queue=1, context_length=256)
    small.start()
    try:
        prompt = _prompt(small, "word " * 60)
        never_stop = SamplingParams(
            temperature=0, logit_bias=dict.fromkeys(small.eos_token_ids, -100.0)
        )

        async def both() -> list[tuple[list[TokenEvent], DoneEvent]]:
            requests = [GenerationRequest([*prompt, i + 1], 250, never_stop) for i in range(2)]
            return list(await asyncio.gather(*(_collect(small, r) for r in requests)))

        results = asyncio.run(both())
        # Two sequences cannot both grow to 250 tokens in 256 shared cells: one ends early
        # with "length", the other then has room; nothing errors, nothing hangs.
        assert all(done.finish_reason == "length" and done.error is None for _, done in results)
        counts = sorted(len(tokens) for tokens, _ in results)
        assert counts[0] < 250 and sum(counts) + 2 * len(prompt) > 256
        assert small.stats()["active"] == 0
    finally:
        small.close()


def test_a_concurrent_request_borrows_a_running_prefix(engine: LlamaCppEngine) -> None:
    shared = _prompt(engine, "You are a careful assistant. " * 12)

    async def scenario() -> DoneEvent:
        first = GenerationRequest([*shared, 11], 20, GREEDY, logits_processors=[_slow])
        running = engine.generate(first)
        assert isinstance(await running.__anext__(), TokenEvent)  # its prompt is in the KV
        _, done = await _collect(engine, GenerationRequest([*shared, 12], 3, GREEDY))
        await running.aclose()
        return done

    done = asyncio.run(scenario())
    assert len(shared) > 50 and done.cached_tokens >= len(shared)
