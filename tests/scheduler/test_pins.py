"""Slot workers as pinned scheduler entries, driven through the recording fake factory."""

from __future__ import annotations

import asyncio

import pytest

from mlxctl.errors import Conflict
from mlxctl.scheduler import CannotFit
from mlxctl.scheduler.state import SlotPin
from tests.scheduler.fakes import MB, RecordingFactory, record
from tests.scheduler.test_loop import running, states, until

pytestmark = pytest.mark.anyio


def slot(factory: RecordingFactory, port: int = 8103, alias: str = "jerry-s") -> SlotPin:
    return SlotPin(port, alias, factory)


async def test_a_pinned_model_serves_every_request_and_is_never_evicted() -> None:
    async with running(budget=25 * MB, max_loaded=1, keep_alive=0.05) as (sched, factory):
        await sched.pin(record("s"), slot(factory))
        lease = await sched.acquire(record("s"), 0.0)  # keep_alive 0 never unloads a slot
        assert lease.worker is factory.latest("s")
        lease.release()
        # max_loaded=1 counts on-demand models only; the slot holds 10 of the 25 MB.
        (await sched.acquire(record("a"))).release()
        (await sched.acquire(record("b"))).release()
        await asyncio.sleep(0.15)  # past every keep-alive
        assert await states(sched) == {"s": "ready"}
        assert factory.log == ["start s", "start a", "stop a", "start b", "stop b"]
        row = (await sched.status()).models[0]
        assert row.slot == slot(factory) and row.keep_alive is None
        assert row.to_dict()["slot"] == {"port": 8103, "alias": "jerry-s"}


async def test_an_on_demand_load_cannot_push_past_the_budget_while_slots_are_loaded() -> None:
    async with running(budget=25 * MB, budget_text="MLXCTL_MEMORY_BUDGET=25MB") as (sched, f):
        await sched.pin(record("s", size_mb=20), slot(f))
        with pytest.raises(CannotFit) as info:
            await sched.acquire(record("big", size_mb=10))
        message = info.value.message
        assert "budget is 25.0 MB (MLXCTL_MEMORY_BUDGET=25MB)" in message
        assert "slots hold 20.0 MB: jerry-s (s, 20.0 MB)" in message
        assert f.log == ["start s"]
        (await sched.acquire(record("small", size_mb=5))).release()
        assert (await sched.status()).used == 25 * MB


async def test_a_slot_load_that_does_not_fit_is_refused_naming_the_budget() -> None:
    async with running(budget=25 * MB, budget_text="MLXCTL_MEMORY_BUDGET=25MB") as (sched, f):
        await sched.pin(record("s1", size_mb=20), slot(f))
        with pytest.raises(CannotFit, match=r"needs about 10\.0 MB .* budget is 25\.0 MB"):
            await sched.pin(record("s2", size_mb=10), slot(f, 8102, "jerry-m"))
        assert f.log == ["start s1"]
        # Idle on-demand models make room for a slot; the other slot does not move.
        (await sched.acquire(record("a", size_mb=5))).release()
        await sched.pin(record("s2", size_mb=5), slot(f, 8102, "jerry-m"))
        assert f.log == ["start s1", "start a", "stop a", "start s2"]


async def test_loading_a_model_onto_a_slot_replaces_its_on_demand_worker() -> None:
    async with running() as (sched, factory):
        lease = await sched.acquire(record("m"))
        pinning = asyncio.create_task(sched.pin(record("m"), slot(factory)))
        await asyncio.sleep(0.02)
        assert factory.log == ["start m"]  # the running request finishes first
        lease.release()
        await pinning
        assert factory.log == ["start m", "stop m", "start m"]
        assert [m.slot for m in (await sched.status()).models] == [slot(factory)]
        # An on-demand load of a model on a slot is the slot's worker.
        await sched.load(record("m"))
        assert len(factory.workers) == 2


async def test_slots_are_unloaded_as_slots_only() -> None:
    async with running() as (sched, factory):
        await sched.pin(record("s"), slot(factory))
        with pytest.raises(Conflict, match=r"pinned on slot 8103 \(jerry-s\)"):
            await sched.unload("s")
        with pytest.raises(Conflict, match="already on slot 8103"):
            await sched.pin(record("s"), slot(factory, 8101, "jerry-l"))
        assert await sched.unpin("s")
        assert factory.log == ["start s", "stop s"]
        assert (await sched.status()).used == 0


async def test_an_adopted_worker_is_counted_and_outlives_the_scheduler() -> None:
    factory = RecordingFactory()
    async with running(factory, budget=25 * MB) as (sched, _):
        (await sched.acquire(record("a", size_mb=10))).release()
        survivor = factory(record("s", size_mb=20))  # a previous daemon's, already running
        await sched.adopt(record("s", size_mb=20), slot(factory), survivor)
        # It is in memory already: idle on-demand models make room for it.
        await until(lambda: "stop a" in factory.log)
        snapshot = await sched.status()
        assert snapshot.used == 20 * MB and snapshot.pinned == 20 * MB
        lease = await sched.acquire(record("s"))
        assert lease.worker is survivor
        lease.release()
    assert factory.log == ["start a", "stop a", "detach s"]
