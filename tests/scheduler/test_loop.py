"""The scheduler loop's decisions, driven through a recording fake worker factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from mlxctl.scheduler import (
    Busy,
    CannotFit,
    Lease,
    LoadFailed,
    Scheduler,
    SchedulerConfig,
    ShuttingDown,
)
from tests.scheduler.fakes import MB, RecordingFactory, record

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(
    factory: RecordingFactory | None = None, **limits: Any
) -> AsyncIterator[tuple[Scheduler, RecordingFactory]]:
    factory = factory or RecordingFactory()
    config = SchedulerConfig(**{"budget": 100 * MB, "keep_alive": 60.0, **limits})
    scheduler = Scheduler(config, factory)
    scheduler.start()
    try:
        yield scheduler, factory
    finally:
        await scheduler.close()


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


async def states(scheduler: Scheduler) -> dict[str, str]:
    return {m.model: m.state for m in (await scheduler.status()).models}


async def test_concurrent_requests_share_one_load() -> None:
    async with running(RecordingFactory(auto_ready=False)) as (sched, factory):
        tasks = [asyncio.create_task(sched.acquire(record("a"))) for _ in range(3)]
        await until(lambda: len(factory.workers) == 1)
        assert await states(sched) == {"a": "loading"}
        factory.latest("a").ready()
        leases = await asyncio.gather(*tasks)
        assert factory.log == ["start a"]
        assert {lease.worker_id for lease in leases} == {leases[0].worker_id}
        snapshot = await sched.status()
        assert snapshot.models[0].in_flight == 3
        for lease in leases:
            lease.release()
        assert (await sched.status()).models[0].in_flight == 0


async def test_a_ready_model_is_reused_whatever_the_options() -> None:
    async with running() as (sched, factory):
        for keep_alive in ("default", 30.0, None, 120.0):
            lease = await sched.acquire(record("a"), keep_alive)  # type: ignore[arg-type]
            lease.release()
        assert factory.log == ["start a"]


async def test_keep_alive_zero_unloads_when_the_last_request_ends() -> None:
    async with running() as (sched, factory):
        first = await sched.acquire(record("a"), 0.0)
        second = await sched.acquire(record("a"), 60.0)
        first.release()  # another request is still in flight: stays
        await sched.status()
        assert factory.log == ["start a"]
        second.keep_alive = 0.0
        second.release()
        await until(lambda: factory.log == ["start a", "stop a"])
        await sched.status()
        assert await states(sched) == {}


async def test_idle_models_expire_after_keep_alive_unless_used_again() -> None:
    async with running(keep_alive=0.15) as (sched, factory):
        (await sched.acquire(record("a"))).release()
        await asyncio.sleep(0.1)
        lease = await sched.acquire(record("a"))  # re-arms the deadline after release
        await asyncio.sleep(0.1)
        assert factory.log == ["start a"]
        lease.release()
        row = (await sched.status()).models[0]
        assert row.expires_in is not None and 0.05 < row.expires_in <= 0.15
        await until(lambda: factory.log == ["start a", "stop a"])
        counters = (await sched.status()).counters
        assert counters.evictions["a", "expired"] == 1


async def test_keep_alive_forever_never_expires() -> None:
    async with running(keep_alive=0.05) as (sched, factory):
        (await sched.acquire(record("a"), None)).release()
        await asyncio.sleep(0.15)
        assert factory.log == ["start a"]
        assert (await sched.status()).models[0].expires_in is None


async def test_eviction_takes_the_least_recently_used_idle_model() -> None:
    async with running(budget=25 * MB) as (sched, factory):
        (await sched.acquire(record("a"))).release()
        (await sched.acquire(record("b"))).release()
        (await sched.acquire(record("a"))).release()  # a is now the most recent
        (await sched.acquire(record("c"))).release()
        assert factory.log == ["start a", "start b", "stop b", "start c"]
        assert await states(sched) == {"a": "ready", "c": "ready"}
        assert (await sched.status()).counters.evictions["b", "evicted"] == 1


async def test_a_busy_model_is_never_evicted_the_request_waits_for_a_release() -> None:
    async with running(budget=25 * MB) as (sched, factory):
        busy_a = await sched.acquire(record("a"))
        busy_b = await sched.acquire(record("b"))
        waiting = asyncio.create_task(sched.acquire(record("c")))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert (await states(sched))["c"] == "queued"
        busy_b.release()
        lease_c = await asyncio.wait_for(waiting, 1)
        assert factory.log == ["start a", "start b", "stop b", "start c"]
        busy_a.release()
        lease_c.release()


async def test_the_new_load_starts_only_after_the_evicted_worker_exited() -> None:
    factory = RecordingFactory()
    async with running(factory, budget=15 * MB) as (sched, _):
        (await sched.acquire(record("a"))).release()
        slow = factory.latest("a")

        async def stop_slowly(grace: float) -> None:
            factory.log.append("stop a")
            await asyncio.sleep(0.1)
            slow.exit(0)

        slow.stop = stop_slowly  # type: ignore[method-assign]
        task = asyncio.create_task(sched.acquire(record("b")))
        await asyncio.sleep(0.05)
        assert factory.log == ["start a", "stop a"]
        (await task).release()
        assert factory.log == ["start a", "stop a", "start b"]


async def test_max_loaded_models_evicts_even_with_memory_to_spare() -> None:
    async with running(max_loaded=1) as (sched, factory):
        (await sched.acquire(record("a"))).release()
        (await sched.acquire(record("b"))).release()
        assert factory.log == ["start a", "stop a", "start b"]


async def test_a_model_larger_than_the_budget_fails_at_once_naming_the_budget() -> None:
    async with running(budget=5 * MB, budget_text="MLXCTL_MEMORY_BUDGET=5MB") as (sched, f):
        with pytest.raises(CannotFit, match=r"needs about 10\.0 MB .* budget is 5\.0 MB") as info:
            await sched.acquire(record("big", size_mb=10))
        assert "MLXCTL_MEMORY_BUDGET=5MB" in info.value.message
        assert info.value.headers() == {"Retry-After": "60"}
        assert f.log == []


async def test_waiting_for_memory_times_out_with_503() -> None:
    async with running(budget=10 * MB, queue_timeout=0.1) as (sched, _):
        held = await sched.acquire(record("a"))
        with pytest.raises(CannotFit, match="held by busy models: a") as info:
            await sched.acquire(record("b"))
        assert info.value.status == 503 and "Retry-After" in info.value.headers()
        held.release()


async def test_a_full_wait_queue_is_busy_429() -> None:
    async with running(RecordingFactory(auto_ready=False), max_queue=2) as (sched, factory):
        waiting = [asyncio.create_task(sched.acquire(record("a"))) for _ in range(2)]
        await until(lambda: len(factory.workers) == 1)
        with pytest.raises(Busy) as info:
            await sched.acquire(record("a"))
        assert info.value.status == 429 and info.value.headers()["Retry-After"] == "2"
        factory.latest("a").ready()
        for lease in await asyncio.gather(*waiting):
            lease.release()


async def test_a_failed_load_fails_its_waiters_then_cools_down() -> None:
    factory = RecordingFactory()
    factory.failures["a"] = "the model failed to load: bad weights (log: /x.log)"
    async with running(factory, cooldown=0.2) as (sched, _):
        results = await asyncio.gather(
            *(sched.acquire(record("a")) for _ in range(2)), return_exceptions=True
        )
        assert all(isinstance(r, LoadFailed) for r in results)
        assert "model 'a' failed to load: the model failed to load: bad weights" in str(results[0])
        with pytest.raises(LoadFailed) as info:  # cooling down: no new worker
            await sched.acquire(record("a"))
        assert int(info.value.headers()["Retry-After"]) >= 1
        assert factory.log == ["start a", "stop a"]
        del factory.failures["a"]
        await asyncio.sleep(0.25)
        (await sched.acquire(record("a"))).release()
        assert factory.log == ["start a", "stop a", "start a"]
        counters = (await sched.status()).counters
        assert counters.loads["a", "failed"] == 1 and counters.loads["a", "ok"] == 1


async def test_a_worker_exiting_while_loading_is_a_failed_load() -> None:
    async with running(RecordingFactory(auto_ready=False)) as (sched, factory):
        task = asyncio.create_task(sched.acquire(record("a")))
        await until(lambda: len(factory.workers) == 1)
        factory.latest("a").exit(1)
        with pytest.raises(LoadFailed, match="exited with code 1"):
            await task


async def test_a_crashed_worker_is_replaced_on_the_next_request() -> None:
    async with running() as (sched, factory):
        lease = await sched.acquire(record("a"))
        factory.latest("a").exit(-9)
        await until(lambda: factory.workers[0].returncode == -9)
        await sched.status()
        assert await states(sched) == {}
        lease.release()  # a release for the dead worker changes nothing
        (await sched.acquire(record("a"))).release()
        assert factory.log == ["start a", "start a"]
        assert (await sched.status()).counters.crashes["a"] == 1


async def test_unload_waits_for_requests_in_flight() -> None:
    async with running() as (sched, factory):
        lease = await sched.acquire(record("a"))
        unload = asyncio.create_task(sched.unload("a"))
        await asyncio.sleep(0.05)
        assert not unload.done() and factory.log == ["start a"]
        lease.release()
        assert await asyncio.wait_for(unload, 1) is True
        assert factory.log == ["start a", "stop a"]
        assert await sched.unload("a") is False


async def test_a_caller_that_gives_up_never_leaks_its_ref_count() -> None:
    async with running(RecordingFactory(auto_ready=False)) as (sched, factory):
        task = asyncio.create_task(sched.acquire(record("a")))
        await until(lambda: len(factory.workers) == 1)
        task.cancel()
        factory.latest("a").ready()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        row = (await sched.status()).models[0]
        assert row.state == "ready" and row.in_flight == 0


async def test_close_stops_every_worker_and_refuses_new_work() -> None:
    factory = RecordingFactory(auto_ready=False)
    sched = Scheduler(SchedulerConfig(budget=100 * MB), factory)
    sched.start()
    await_ready = asyncio.create_task(sched.acquire(record("a")))
    await until(lambda: len(factory.workers) == 1)
    factory.latest("a").ready()
    lease: Lease = await await_ready
    loading = asyncio.create_task(sched.acquire(record("b")))
    await until(lambda: len(factory.workers) == 2)
    await sched.close()
    assert sorted(factory.log) == ["start a", "start b", "stop a", "stop b"]
    with pytest.raises(ShuttingDown):
        await loading
    with pytest.raises(ShuttingDown):
        await sched.acquire(record("a"))
    lease.release()


async def test_changed_wakes_a_watcher_on_each_state_change_but_not_on_queries() -> None:
    async with running(RecordingFactory(auto_ready=False)) as (sched, factory):
        version = sched.version
        await sched.status()
        await sched.status()
        assert sched.version == version  # a query changes nothing
        watcher = asyncio.create_task(sched.changed(version))
        await asyncio.sleep(0.01)
        assert not watcher.done()
        load = asyncio.create_task(sched.load(record("a")))
        version = await asyncio.wait_for(watcher, 2)
        assert await states(sched) == {"a": "loading"}
        ready = asyncio.create_task(sched.changed(version))
        factory.latest("a").ready()
        await asyncio.wait_for(ready, 2)
        await load
        assert await states(sched) == {"a": "ready"}
        # A change between reading `version` and waiting is not missed.
        version = sched.version
        await sched.unload("a")
        assert await asyncio.wait_for(sched.changed(version), 2) > version
