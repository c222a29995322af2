"""Prefix reuse beyond the in-memory prompt cache: checkpoints for hybrid and sliding-window
models, the disk tier across an engine restart, and quantized KV (engine/cachetiers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.engine.cachetiers import CacheOptions
from mlxctl.engine.generator import Engine
from mlxctl.errors import InvalidInput
from mlxctl.factory import make_model
from tests.engine.streams import collect, greedy, run

SYSTEM = list(range(100, 300))  # a shared "system prompt" of 200 tokens


@pytest.fixture(scope="module", params=["qwen3_5", "gemma3_text"])
def unstrimmable(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    arch = str(request.param)
    return make_model(tmp_path_factory.mktemp(arch), arch=arch, size="tiny")


def _engine(path: Path, **options: object) -> Engine:
    engine = Engine(path, **options)  # type: ignore[arg-type]
    engine.start()
    return engine


def test_a_shared_prefix_is_reused_and_survives_a_restart(
    unstrimmable: Path, tmp_path: Path
) -> None:
    options = CacheOptions(
        disk_dir=tmp_path / "disk", disk_bytes=64 << 20, disk_min_tokens=64, checkpoint_every=64
    )
    plain = _engine(unstrimmable, prompt_cache_entries=0)
    engine = _engine(unstrimmable, cache_options=options)
    try:
        first, second = SYSTEM + list(range(400, 420)), SYSTEM + list(range(500, 530))
        cold = run(collect(engine, greedy(first, 8)))
        assert cold.done is not None and cold.done.cached_tokens == 0
        again = run(collect(engine, greedy(second, 8)))
        # The checkpoint at 192 (every 64 tokens) is the longest one inside the shared 200.
        assert again.done is not None and again.done.cached_tokens == 192
        expected = run(collect(plain, greedy(second, 8)))
        assert again.tokens == expected.tokens  # resuming from a checkpoint changes nothing
        repeat = run(collect(engine, greedy(first, 8)))
        assert repeat.done is not None and repeat.done.cached_tokens == len(first) - 1
    finally:
        engine.close()
    restarted = _engine(unstrimmable, cache_options=options)
    try:
        result = run(collect(restarted, greedy(second, 8)))
        assert result.done is not None and result.done.cached_tokens == len(second) - 1
        assert result.tokens == expected.tokens
        stats = restarted.stats()["prompt_cache"]
        assert stats["disk_hits"] == 1 and stats["disk_corrupt"] == 0
    finally:
        restarted.close()
        plain.close()


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # head size 64: the tiny models' 16 is below mlx's smallest quantization group (32).
    return make_model(tmp_path_factory.mktemp("small"), size="small")


def test_quantized_kv_serves_and_keeps_its_prefixes_quantized(small_model: Path) -> None:
    # Both on the batch path (the fast path keeps a lone sequence's KV in 256-token steps),
    # so the two stored entries differ only by quantization.
    full = _engine(small_model, fast_path=False)
    quantized = _engine(small_model, cache_options=CacheOptions(kv_bits=8, kv_group_size=64))
    fresh = _engine(
        small_model, prompt_cache_entries=0, cache_options=CacheOptions(kv_bits=8, kv_group_size=64)
    )
    try:
        prompt = list(range(50, 98))  # short: the small model prefills slowly without BLAS
        results = {}
        for name, engine in (("full", full), ("quantized", quantized)):
            results[name] = run(collect(engine, greedy(prompt, 8)))
        assert len(results["quantized"].tokens) == 8
        held = {
            name: e.stats()["prompt_cache"]["bytes"]
            for name, e in [*zip(results, (full, quantized), strict=True)]
        }
        # The stored prefix stays quantized: in a float32 model, 8 bits plus a float32
        # scale and bias per 64 values is 0.281 of the full size.
        assert held["quantized"] == pytest.approx(held["full"] * (1 / 4 + 2 / 64), rel=0.02)
        longer = prompt + list(range(600, 616))
        reused = run(collect(quantized, greedy(longer, 8)))
        assert reused.done is not None and reused.done.cached_tokens >= len(prompt)
        assert reused.tokens == run(collect(fresh, greedy(longer, 8))).tokens
    finally:
        for engine in (full, quantized, fresh):
            engine.close()


def test_a_group_size_the_heads_cannot_take_fails_the_load(tmp_path: Path) -> None:
    tiny = make_model(tmp_path / "tiny", size="tiny")  # head size 16
    engine = Engine(tiny, cache_options=CacheOptions(kv_bits=4, kv_group_size=32))
    with pytest.raises(InvalidInput, match="kv_group_size 32"):
        engine.start()
    with pytest.raises(InvalidInput, match="kv_bits"):
        Engine(tiny, cache_options=CacheOptions(kv_bits=3))
