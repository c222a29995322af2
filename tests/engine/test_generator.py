"""The engine end to end on a tiny random-weight model: streams, batching, limits, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest

from mlxctl.engine import mlxlm
from mlxctl.engine.generator import ContextOverflow, Engine, QueueFull
from mlxctl.engine.solo import Solo
from mlxctl.engine.types import DoneEvent, GenerationRequest, SamplingParams, TokenEvent
from mlxctl.errors import Unavailable
from tests.engine.streams import Result, collect, greedy, run


def test_plain_generation_counts_and_text(engine: Engine, prompt: list[int]) -> None:
    result = run(collect(engine, greedy(prompt, 12)))
    done = result.done
    assert done is not None
    assert done.finish_reason == "length"
    assert (done.prompt_tokens, done.completion_tokens) == (len(prompt), 12)
    assert len(result.events) == 12 and done.error is None
    assert done.time_to_first_token is not None and done.time_to_first_token > 0
    assert done.generation_seconds is not None and done.generation_seconds >= 0
    # The streamed pieces add up to exactly the decoded text.
    assert result.text == engine.tokenizer.decode(result.tokens)
    stats = engine.stats()
    assert stats["requests_total"] == 1
    assert stats["tokens_prompt_total"] == len(prompt)
    assert stats["tokens_generated_total"] == 12
    assert stats["active"] == 0 and stats["queue_depth"] == 0


def test_greedy_matches_stream_generate(
    engine: Engine, prompt: list[int], tiny_model: Path
) -> None:
    ours = run(collect(engine, greedy(prompt, 24)))
    model, tokenizer = mlxlm.load(tiny_model)
    theirs = [r.token for r in mlxlm.stream_generate(model, tokenizer, prompt, max_tokens=24)]
    assert ours.tokens == theirs


def test_eos_finishes_with_stop(engine: Engine, prompt: list[int]) -> None:
    eos = min(engine.eos_token_ids)
    result = run(collect(engine, greedy(prompt, 50, logit_bias={eos: 100.0})))
    assert result.done is not None and result.done.finish_reason == "stop"
    # The stop token is reported, but its own text is never decoded.
    assert result.tokens == [eos]
    assert result.events[0].text == "" and result.done.completion_tokens == 1


def test_stop_token_sequence(engine: Engine, prompt: list[int]) -> None:
    free = run(collect(engine, greedy(prompt, 10))).tokens
    request = greedy(prompt, 10)
    request.stop_token_ids = [free[3:5]]
    result = run(collect(engine, request))
    assert result.done is not None and result.done.finish_reason == "stop"
    assert result.tokens == free[:5]
    assert result.text == engine.tokenizer.decode(free[:4])


def test_concurrent_requests_are_batched(engine: Engine, prompt: list[int]) -> None:
    prompts = [prompt[: len(prompt) - i] for i in range(5)]
    alone = [run(collect(engine, greedy(p, 16))).tokens for p in prompts]

    async def together() -> list[Result]:
        return list(await asyncio.gather(*(collect(engine, greedy(p, 16)) for p in prompts)))

    results = run(together())
    assert all(r.done is not None and r.done.completion_tokens == 16 for r in results)
    assert engine.stats()["batch_peak"] >= 4
    # Batching changes nothing about what each sequence decodes.
    assert [r.tokens for r in results] == alone


def test_logprobs_and_top_logprobs(engine: Engine, prompt: list[int]) -> None:
    result = run(collect(engine, greedy(prompt, 8, logprobs=True, top_logprobs=5)))
    for event in result.events:
        assert event.logprob is not None and event.logprob <= 0
        assert len(event.top_logprobs) == 5
        values = [lp for _, lp in event.top_logprobs]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        # Greedy picks the most likely token.
        assert event.top_logprobs[0][0] == event.token
        assert event.top_logprobs[0][1] == pytest.approx(event.logprob)
    plain = run(collect(engine, greedy(prompt, 2)))
    assert plain.events[0].logprob is None and plain.events[0].top_logprobs == ()


def test_logit_bias_forces_a_token(engine: Engine, prompt: list[int]) -> None:
    token = engine.tokenizer.encode(" weather", add_special_tokens=False)[0]
    sampled = SamplingParams(temperature=1.0, seed=3, logit_bias={token: 100.0})
    result = run(collect(engine, GenerationRequest(prompt, 6, sampled)))
    assert result.tokens == [token] * 6


def test_cancel_leaves_batch_and_others_finish(engine: Engine, prompt: list[int]) -> None:
    async def scenario() -> tuple[Result, int]:
        other = asyncio.ensure_future(collect(engine, greedy(prompt, 300)))
        stream = engine.generate(greedy(prompt, 3000))
        consumed = 0
        async for event in stream:
            assert isinstance(event, TokenEvent)
            consumed += 1
            if engine.stats()["active"] == 2 and consumed >= 3:
                break
        await stream.aclose()
        while engine.stats()["active"] == 2:
            await asyncio.sleep(0.001)
        return await other, consumed

    other, consumed = run(scenario())
    stats = engine.stats()
    assert stats["cancelled_total"] == 1 and stats["active"] == 0
    assert other.done is not None and other.done.finish_reason == "length"
    assert other.done.completion_tokens == 300
    # The cancelled sequence ran on for only a few steps after the close.
    extra = stats["tokens_generated_total"] - 300 - consumed
    assert 0 <= extra <= 16


def test_cancel_while_queued(make_engine: Callable[..., Engine], prompt: list[int]) -> None:
    engine = make_engine(max_batch=1, max_queue=4)

    async def scenario() -> Result:
        first = asyncio.ensure_future(collect(engine, greedy(prompt, 200)))
        while engine.stats()["active"] == 0:
            await asyncio.sleep(0.001)
        queued = engine.generate(greedy(prompt, 5))
        waiting = asyncio.ensure_future(queued.__anext__())
        await asyncio.sleep(0.01)
        assert engine.stats()["queue_depth"] == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await queued.aclose()
        return await first

    first = run(scenario())
    assert first.done is not None and first.done.finish_reason == "length"
    stats = engine.stats()
    assert stats["cancelled_total"] == 1 and stats["queue_depth"] == 0


def test_queue_full(make_engine: Callable[..., Engine], prompt: list[int]) -> None:
    engine = make_engine(max_batch=1, max_queue=1)

    async def scenario() -> QueueFull:
        streams = [engine.generate(greedy(prompt, 500)) for _ in range(2)]
        pending = [asyncio.ensure_future(s.__anext__()) for s in streams]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as refused:
            await engine.generate(greedy(prompt, 5)).__anext__()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for s in streams:
            await s.aclose()
        return refused.value

    refused = run(scenario())
    assert refused.retry_after >= 1.0
    assert isinstance(refused, Unavailable)


def test_context_overflow_and_clamp(engine: Engine) -> None:
    context = engine.context_length
    too_long = GenerationRequest([100] * context, 5)
    with pytest.raises(ContextOverflow) as info:
        run(collect(engine, too_long))
    assert isinstance(info.value, ValueError)
    assert (info.value.prompt_tokens, info.value.context_length) == (context, context)
    assert engine.stats()["requests_total"] == 0
    # Prompt + max_tokens past the context: max_tokens is clamped.
    result = run(collect(engine, greedy([100] * (context - 3), 50)))
    assert result.done is not None and result.done.finish_reason == "length"
    assert result.done.completion_tokens == 3


def test_bad_requests_raise_before_any_work(engine: Engine) -> None:
    for request in (
        GenerationRequest([], 5),
        GenerationRequest([1, 2], 0),
        GenerationRequest([1, engine.vocab_size], 5),
        GenerationRequest([1, 2], 5, SamplingParams(top_p=0.0)),
    ):
        with pytest.raises(ValueError):
            run(collect(engine, request))
    assert engine.stats()["requests_total"] == 0


def test_failing_logits_processor_fails_only_its_request(engine: Engine, prompt: list[int]) -> None:
    def exploding() -> Callable[[Any, Any], Any]:
        calls = 0

        def processor(tokens: mx.array, logits: mx.array) -> mx.array:
            nonlocal calls
            calls += 1
            if calls > 3:
                raise RuntimeError("boom")
            return logits

        return processor

    alone = run(collect(engine, greedy(prompt, 40))).tokens
    bad = greedy(prompt, 40)
    bad.logits_processors = [exploding]

    async def together() -> list[Result]:
        return list(await asyncio.gather(collect(engine, greedy(prompt, 40)), collect(engine, bad)))

    good, failed = run(together())
    assert failed.done is not None and failed.done.finish_reason == "error"
    assert failed.done.error is not None and "boom" in failed.done.error
    assert good.done is not None and good.done.finish_reason == "length"
    assert good.tokens == alone
    # The thread carries on.
    assert run(collect(engine, greedy(prompt, 3))).tokens == alone[:3]
    assert engine.stats()["errors_total"] == 1


def test_failing_processor_factory(engine: Engine, prompt: list[int]) -> None:
    def broken() -> Callable[[Any, Any], Any]:
        raise ValueError("bad grammar")

    request = greedy(prompt, 5)
    request.logits_processors = [broken]
    result = run(collect(engine, request))
    assert result.done is not None and result.done.finish_reason == "error"
    assert result.events == [] and "bad grammar" in (result.done.error or "")


def test_close_ends_running_streams(make_engine: Callable[..., Engine], prompt: list[int]) -> None:
    engine = make_engine()

    async def scenario() -> DoneEvent:
        stream = engine.generate(greedy(prompt, 3000))
        await stream.__anext__()
        await asyncio.get_running_loop().run_in_executor(None, engine.close)
        last = None
        async for event in stream:
            last = event
        assert isinstance(last, DoneEvent)
        return last

    done = run(scenario())
    assert done.finish_reason == "error" and "closed" in (done.error or "")
    with pytest.raises(Unavailable):
        run(collect(engine, greedy(prompt, 3)))


def test_stats_shape(engine: Engine, prompt: list[int]) -> None:
    run(collect(engine, greedy(prompt, 3)))
    stats = engine.stats()
    assert stats["max_batch"] == 8 and stats["max_queue"] == 64
    assert set(stats["memory"]) == {"active", "peak", "cache"}
    assert stats["memory"]["peak"] > 0
    assert set(stats["prompt_cache"]) == {
        "entries",
        "bytes",
        "hits",
        "misses",
        "max_entries",
        "max_bytes",
    }


def test_start_errors(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not found"):
        Engine(tmp_path / "missing").start()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(Exception):  # noqa: B017 - whatever mlx-lm raises for a bad model
        Engine(broken).start()


def test_cancelling_the_consumer_task(engine: Engine, prompt: list[int]) -> None:
    async def scenario() -> dict[str, Any]:
        task = asyncio.ensure_future(collect(engine, greedy(prompt, 3000)))
        while engine.stats()["tokens_generated_total"] < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while engine.stats()["active"]:
            await asyncio.sleep(0.001)
        return engine.stats()

    stats = run(scenario())
    assert stats["cancelled_total"] == 1 and stats["tokens_generated_total"] < 100


def test_multibyte_text_streams_exactly(engine: Engine, prompt: list[int]) -> None:
    wanted = "héllo wörld ✓ — ünïcode 日本"
    script = engine.tokenizer.encode(wanted, add_special_tokens=False)
    eos = min(engine.eos_token_ids)

    def forcing() -> Callable[[Any, Any], Any]:
        def processor(tokens: mx.array, logits: mx.array) -> mx.array:
            # mlx-lm passes prompt + generated tokens: the position picks the next one.
            step = tokens.size - len(prompt)
            target = script[step] if step < len(script) else eos
            return mx.where(mx.arange(logits.shape[-1]) == target, 0.0, -1e9)[None]

        return processor

    request = greedy(prompt, 100)
    request.logits_processors = [forcing]
    result = run(collect(engine, request))
    assert result.tokens == [*script, eos]
    assert result.text == wanted
    assert all("\ufffd" not in event.text for event in result.events)


def test_more_requests_than_the_batch_wait_their_turn(
    make_engine: Callable[..., Engine], prompt: list[int]
) -> None:
    engine = make_engine(max_batch=2, max_queue=8)

    async def many() -> list[Result]:
        return list(await asyncio.gather(*(collect(engine, greedy(prompt, 8)) for _ in range(6))))

    results = run(many())
    assert all(r.done is not None and r.done.finish_reason == "length" for r in results)
    assert len({tuple(r.tokens) for r in results}) == 1
    stats = engine.stats()
    assert stats["batch_peak"] == 2 and stats["requests_total"] == 6
    assert stats["queue_depth"] == 0 and stats["active"] == 0


@pytest.mark.parametrize("stepper", [mlxlm.Batch, Solo])
def test_a_failing_step_fails_the_batch_not_the_thread(
    engine: Engine, prompt: list[int], monkeypatch: pytest.MonkeyPatch, stepper: Any
) -> None:
    # A lone request decodes on the fast path (Solo), others in the batch: both fail alike.
    step = stepper.step
    calls = 0

    def flaky(self: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("device lost")
        return step(self)

    monkeypatch.setattr(stepper, "step", flaky)
    if stepper is mlxlm.Batch:
        monkeypatch.setattr(engine, "fast_path", False)
    failed = run(collect(engine, greedy(prompt, 20)))
    assert failed.done is not None and failed.done.finish_reason == "error"
    assert "device lost" in (failed.done.error or "")
    after = run(collect(engine, greedy(prompt, 5)))
    assert after.done is not None and after.done.finish_reason == "length"


def test_long_prompts_prefill_one_at_a_time() -> None:
    from types import SimpleNamespace

    from mlxctl.engine.generator import _LONG_PREFILL, _Generation
    from mlxctl.engine.outbox import Job as _Job

    def job(tokens: int, *, first: bool = False, cached: int = 0) -> _Job:
        j = _Job(greedy(list(range(tokens)), 4), asyncio.new_event_loop(), asyncio.Queue(), 4)
        j.loop.close()
        j.first_token, j.cached = (1.0 if first else None), cached
        return j

    def may(new: _Job, *active: _Job, peek: int = 0, together: int = 1) -> bool:
        state = SimpleNamespace(
            engine=SimpleNamespace(long_prefills=together),
            active=dict(enumerate(active)),
            cache=SimpleNamespace(peek=lambda _: peek),
            tiers=SimpleNamespace(peek=lambda _: 0),  # no disk tier
        )
        return _Generation._may_prefill_now(state, new)  # type: ignore[arg-type]

    long, short = _LONG_PREFILL + 50, 40
    assert may(job(long))  # nothing prefilling: start at once
    assert may(job(long), job(long, first=True))  # the other decodes already
    assert not may(job(long), job(short))  # a long prefill waits for any prefill ahead
    assert not may(job(long), job(long))
    assert not may(job(short), job(long))  # a short one waits for a long prefill ahead
    assert may(job(short), job(short), job(short))  # short prompts share a prefill batch
    assert may(job(long), job(short), peek=long - 10)  # mostly cached: short after all
    assert may(job(short), job(long, cached=long - 10))
    # With room for two long prefills: a second joins, a third waits; a short one still
    # never joins them (it would be padded to their chunk) nor they it.
    assert may(job(long), job(long), job(long, first=True), together=2)
    assert not may(job(long), job(long), job(long), together=2)
    assert not may(job(short), job(long), together=2)
    assert not may(job(long), job(short), together=2)


def test_prefill_chunk_follows_the_device(tiny_model: Path) -> None:
    from mlxctl.engine.generator import _CPU_PREFILL_STEP, _GPU_PREFILL_STEP, default_prefill_step

    on_cpu = mx.default_device().type == mx.cpu
    assert default_prefill_step() == (_CPU_PREFILL_STEP if on_cpu else _GPU_PREFILL_STEP)
    assert Engine(tiny_model).prefill_step_size == default_prefill_step()
    assert Engine(tiny_model, prefill_step_size=64).prefill_step_size == 64
    with pytest.raises(ValueError, match="long_prefills"):
        Engine(tiny_model, long_prefills=0)
