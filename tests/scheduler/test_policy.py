from __future__ import annotations

from dataclasses import replace

from mlxctl.model_options import ModelOptions
from mlxctl.scheduler.policy import (
    LoadedView,
    cannot_fit,
    estimate_bytes,
    evict_for,
    waits_for_exits,
)
from tests.scheduler.fakes import MB, record

GB = 1000 * MB


def opts(kv_context: int, max_batch: int) -> ModelOptions:
    return ModelOptions(kv_context=kv_context, max_batch=max_batch)


def view(
    name: str, gb: float, *, in_flight: int = 0, used: float = 0.0, **kw: object
) -> LoadedView:
    return LoadedView(name, int(gb * GB), in_flight=in_flight, last_used=used, **kw)  # type: ignore[arg-type]


def test_fits_without_evicting() -> None:
    assert evict_for(2 * GB, [view("a", 4)], budget=8 * GB, max_loaded=3) == []
    assert evict_for(2 * GB, [], budget=2 * GB, max_loaded=1) == []


def test_evicts_least_recently_used_idle_models_first() -> None:
    loaded = [view("old", 3, used=1), view("new", 3, used=3), view("mid", 3, used=2)]
    assert evict_for(3 * GB, loaded, budget=9 * GB, max_loaded=5) == ["old"]
    assert evict_for(6 * GB, loaded, budget=9 * GB, max_loaded=5) == ["old", "mid"]


def test_never_evicts_a_model_with_requests_in_flight() -> None:
    loaded = [view("busy", 4, in_flight=1, used=0), view("idle", 4, used=5)]
    assert evict_for(4 * GB, loaded, budget=8 * GB, max_loaded=5) == ["idle"]
    both_busy = [view("a", 4, in_flight=2), view("b", 4, in_flight=1)]
    assert evict_for(4 * GB, both_busy, budget=8 * GB, max_loaded=5) is None


def test_loading_models_are_not_evictable() -> None:
    loaded = [view("loading", 4, state="loading"), view("idle", 2, used=9)]
    assert evict_for(4 * GB, loaded, budget=8 * GB, max_loaded=5) == ["idle"]
    assert evict_for(5 * GB, loaded, budget=8 * GB, max_loaded=5) is None


def test_larger_than_the_budget_is_none_even_when_empty() -> None:
    assert evict_for(9 * GB, [], budget=8 * GB, max_loaded=3) is None
    assert evict_for(1, [], budget=8 * GB, max_loaded=0) is None


def test_max_loaded_evicts_even_when_memory_fits() -> None:
    loaded = [view("a", 1, used=2), view("b", 1, used=1)]
    assert evict_for(1 * GB, loaded, budget=100 * GB, max_loaded=2) == ["b"]


def test_keep_alive_forever_models_go_after_every_other_idle_one() -> None:
    loaded = [view("pinned", 3, used=0, forever=True), view("recent", 3, used=9)]
    assert evict_for(3 * GB, loaded, budget=6 * GB, max_loaded=5) == ["recent"]
    assert evict_for(6 * GB, loaded, budget=6 * GB, max_loaded=5) == ["recent", "pinned"]


def test_unloading_models_count_as_gone_but_must_exit_first() -> None:
    loaded = [view("leaving", 4, state="unloading"), view("idle", 2, used=1)]
    assert evict_for(6 * GB, loaded, budget=8 * GB, max_loaded=5) == []
    assert waits_for_exits(6 * GB, loaded, budget=8 * GB, max_loaded=5)
    assert not waits_for_exits(2 * GB, loaded, budget=8 * GB, max_loaded=5)


def test_estimate_is_weights_plus_kv_for_every_sequence() -> None:
    rec = record("m", size_mb=100, kv=1000, ctx=2048)
    assert estimate_bytes(rec, opts(1024, 4)) == 100 * MB + 1000 * 1024 * 4
    # The reserved context never exceeds the model's own.
    assert estimate_bytes(rec, opts(8192, 1)) == 100 * MB + 1000 * 2048
    assert estimate_bytes(record("unknown", size_mb=0), opts(4096, 8)) == 0


def test_a_gguf_counts_the_one_context_llama_cpp_allocates() -> None:
    long = replace(record("g", size_mb=100, kv=1000, ctx=32768), format="gguf")
    # Shared by every sequence, capped at 8192 cells: not ctx × max_batch.
    assert estimate_bytes(long, opts(4096, 8)) == 100 * MB + 1000 * 8192
    short = replace(long, context_length=2048)
    assert estimate_bytes(short, opts(4096, 8)) == 100 * MB + 1000 * 2048


def test_a_pinned_model_is_never_evicted_and_shrinks_the_budget() -> None:
    loaded = [view("slot", 5, pinned=True), view("idle", 2, used=1)]
    assert evict_for(3 * GB, loaded, budget=8 * GB, max_loaded=5) == ["idle"]
    # Evicting everything evictable still leaves only 3 GB: no wait can help.
    assert evict_for(4 * GB, loaded, budget=8 * GB, max_loaded=5) is None
    assert cannot_fit(4 * GB, loaded, budget=8 * GB, max_loaded=5)
    assert not cannot_fit(3 * GB, loaded, budget=8 * GB, max_loaded=5)
    # A busy on-demand model may still leave: waiting can help.
    busy = [view("slot", 5, pinned=True), view("busy", 2, in_flight=1)]
    assert evict_for(3 * GB, busy, budget=8 * GB, max_loaded=5) is None
    assert not cannot_fit(3 * GB, busy, budget=8 * GB, max_loaded=5)


def test_pinned_models_do_not_count_against_max_loaded() -> None:
    loaded = [view("s1", 1, pinned=True), view("s2", 1, pinned=True), view("a", 1, used=1)]
    assert evict_for(1 * GB, loaded, budget=100 * GB, max_loaded=2) == []
    assert evict_for(1 * GB, loaded, budget=100 * GB, max_loaded=1) == ["a"]
    # A slot load (pinned target) is bounded by memory alone.
    assert evict_for(1 * GB, loaded, budget=100 * GB, max_loaded=0, pinned=True) == []
    assert not waits_for_exits(1 * GB, loaded, budget=100 * GB, max_loaded=1, pinned=True)


def test_the_served_context_bounds_the_estimate() -> None:
    rec = record("m", size_mb=100, kv=1000, ctx=32768)
    capped = ModelOptions(kv_context=4096, max_batch=2, context=1024)
    assert estimate_bytes(rec, capped) == 100 * MB + 1000 * 1024 * 2
    gguf = replace(rec, format="gguf")
    assert estimate_bytes(gguf, ModelOptions(context=16384)) == 100 * MB + 1000 * 16384


def test_a_quantized_kv_cache_is_estimated_at_its_quantized_size() -> None:
    # float16: 4096 bytes per token are 2048 values; 8 bits and a scale + bias per 64.
    rec = replace(record("q", size_mb=100, kv=4096, ctx=32768), extra={"dtype": "float16"})
    fp, q8, q4 = (ModelOptions(kv_context=4096, max_batch=8, kv_bits=b) for b in (None, 8, 4))
    kv = {name: estimate_bytes(rec, o) - 100 * MB for name, o in (("fp", fp), ("8", q8), ("4", q4))}
    assert kv["8"] == (2048 + 2048 // 64 * 4) * 4096 * 8
    assert kv["8"] / kv["fp"] == 0.53125 and kv["4"] / kv["fp"] == 0.28125
    # The same budget admits the quantized worker where the full-precision one cannot fit.
    budget = 100 * MB + kv["4"] + 1
    assert evict_for(estimate_bytes(rec, fp), [], budget=budget, max_loaded=5) is None
    assert evict_for(estimate_bytes(rec, q4), [], budget=budget, max_loaded=5) == []
    assert q4.worker_argv()[-4:] == ["--kv-bits", "4", "--kv-group-size", "64"]
    assert "--kv-bits" not in fp.worker_argv()
