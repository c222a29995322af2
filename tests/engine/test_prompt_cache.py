"""Prompt-cache reuse through the engine, and the cache's bounds (entries, bytes, LRU)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from mlxctl.engine.generator import Engine
from mlxctl.engine.prompt_cache import PromptCache
from mlxctl.engine.types import TokenEvent
from tests.engine.streams import Result, collect, greedy, run


def chat(engine: Engine, *messages: tuple[str, str]) -> list[int]:
    turns = [{"role": role, "content": content} for role, content in messages]
    return list(engine.tokenizer.apply_chat_template(turns, add_generation_prompt=True))


def test_second_turn_reuses_the_first(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    uncached = make_engine(prompt_cache_entries=0)
    first = chat(engine, ("user", "What is the capital of France?"))
    reply = run(collect(engine, greedy(first, 12)))
    assert reply.done is not None and reply.done.cached_tokens == 0
    second = chat(
        engine,
        ("user", "What is the capital of France?"),
        ("assistant", reply.text),
        ("user", "And of Spain?"),
    )
    again = run(collect(engine, greedy(second, 12)))
    assert again.done is not None
    assert again.done.cached_tokens >= len(first)
    assert again.done.prompt_tokens == len(second)
    stats = engine.stats()
    assert stats["prompt_cache"]["hits"] == 1 and stats["tokens_cached_total"] > 0
    # Reused KV decodes exactly what a full prefill decodes.
    fresh = run(collect(uncached, greedy(second, 12)))
    assert fresh.done is not None and fresh.done.cached_tokens == 0
    assert again.tokens == fresh.tokens


def test_a_concurrent_request_copies_a_running_prompt(
    make_engine: Callable[..., Engine],
) -> None:
    # Cache off: the only way to skip the shared prefill is to copy it from the running one.
    engine = make_engine(prompt_cache_entries=0)
    alone_engine = make_engine(prompt_cache_entries=0)
    system = ("system", "You are a careful assistant. " * 8)
    first = chat(engine, system, ("user", "Name a colour."))
    second = chat(engine, system, ("user", "Name a fruit."))
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert common > 40

    def slow(tokens: Any, logits: Any) -> Any:
        time.sleep(0.01)
        return logits

    async def scenario() -> Result:
        running_request = greedy(first, 30)
        running_request.logits_processors = [lambda: slow]
        running = engine.generate(running_request)
        assert isinstance(await running.__anext__(), TokenEvent)  # decoding: its KV is whole
        result = await collect(engine, greedy(second, 8))
        await running.aclose()
        return result

    borrowed = run(scenario())
    assert borrowed.done is not None and borrowed.done.cached_tokens == common
    # Copied KV decodes exactly what a full prefill decodes.
    alone = run(collect(alone_engine, greedy(second, 8)))
    assert alone.done is not None and alone.done.cached_tokens == 0
    assert borrowed.tokens == alone.tokens


def test_shared_system_prompt(engine: Engine) -> None:
    system = ("system", "You are a terse assistant who answers in one word.")
    one = chat(engine, system, ("user", "Name a colour."))
    two = chat(engine, system, ("user", "Name a fruit."))
    run(collect(engine, greedy(one, 4)))
    second = run(collect(engine, greedy(two, 4)))
    assert second.done is not None
    common = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
    assert 0 < second.done.cached_tokens <= common


def test_identical_prompt_leaves_one_token_to_run(engine: Engine) -> None:
    prompt = chat(engine, ("user", "Repeat after me."))
    first = run(collect(engine, greedy(prompt, 6)))
    again = run(collect(engine, greedy(prompt, 6)))
    assert again.done is not None and again.done.cached_tokens == len(prompt) - 1
    assert again.tokens == first.tokens


def kv(tokens: int, layers: int = 2) -> list[Any]:
    """A KV cache holding `tokens` positions: 2 heads x 4 dims of float32 per layer."""
    caches = []
    for _ in range(layers):
        cache = KVCache()
        cache.update_and_fetch(mx.zeros((1, 2, tokens, 4)), mx.zeros((1, 2, tokens, 4)))
        caches.append(cache)
    return caches


def nbytes(tokens: int, layers: int = 2) -> int:
    """What a kept entry of `tokens` positions costs: keys and values, no spare slots."""
    return layers * 2 * (2 * tokens * 4) * 4


def test_fetch_longest_prefix_and_miss() -> None:
    cache = PromptCache(max_entries=4, max_bytes=1 << 30)
    assert cache.fetch([1, 2, 3]).cache is None
    cache.store([1, 2, 3, 4, 5], kv(5))
    hit = cache.fetch([1, 2, 3, 9])
    assert hit.cache is not None and hit.tokens == 3
    assert hit.cache[0].offset == 3  # a trimmed private copy
    assert cache.fetch([7, 8]).cache is None
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 2


def test_bounded_by_entries_least_recently_used_first() -> None:
    cache = PromptCache(max_entries=2, max_bytes=1 << 30)
    cache.store([1, 1, 1], kv(3))
    cache.store([2, 2, 2], kv(3))
    assert cache.fetch([1, 1, 1, 5]).tokens == 3  # [1, 1, 1] is now the most recent
    cache.store([3, 3, 3], kv(3))
    assert cache.stats()["entries"] == 2
    assert cache.fetch([2, 2, 2, 5]).cache is None
    assert cache.fetch([1, 1, 1, 5]).tokens == 3
    assert cache.fetch([3, 3, 3, 5]).tokens == 3


def test_bounded_by_bytes() -> None:
    entry = nbytes(8)
    cache = PromptCache(max_entries=100, max_bytes=2 * entry + entry // 2)
    for first in range(1, 5):
        cache.store([first] * 8, kv(8))
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["bytes"] == 2 * entry
    assert cache.fetch([1] * 9).cache is None and cache.fetch([2] * 9).cache is None
    assert cache.fetch([4] * 9).tokens == 8


def test_extension_replaces_its_prefix() -> None:
    cache = PromptCache(max_entries=4, max_bytes=1 << 30)
    cache.store([1, 2, 3], kv(3))
    cache.store([1, 2, 3, 4, 5, 6], kv(6))
    assert cache.stats()["entries"] == 1


def test_disabled() -> None:
    cache = PromptCache(max_entries=0, max_bytes=1 << 30)
    cache.store([1, 2, 3], kv(3))
    assert cache.fetch([1, 2, 3, 4]).cache is None
    assert cache.stats()["entries"] == 0


def test_a_lone_request_keeps_only_the_tokens_it_holds(
    make_engine: Callable[..., Engine], prompt: list[int]
) -> None:
    """The fast path's cache grows 256 slots at a time; the kept entry costs what the batch
    path's does per token, not the slots it never filled. (The batch also feeds the last
    reply token; the fast path queues no pass after it.)"""
    fast, batch = make_engine(), make_engine(fast_path=False)
    for engine in (fast, batch):
        run(collect(engine, greedy(prompt, 5)))
    kept = [engine.stats()["prompt_cache"]["bytes"] for engine in (fast, batch)]
    held = len(prompt) + 5
    assert kept[0] * held == kept[1] * (held - 1) > 0
