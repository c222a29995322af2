"""A config reload's effects on the loop: a drained restart, new limits, per-model
keep-alive and pinning (config.yaml), read live from the options source."""

from __future__ import annotations

import asyncio

import pytest

from mlxctl.config.file import parse_config
from mlxctl.model_options import ModelOptions, OptionsSource
from mlxctl.scheduler import Scheduler, SchedulerConfig
from tests.scheduler.fakes import MB, RecordingFactory, record

pytestmark = pytest.mark.anyio


def _scheduler(
    options: OptionsSource, keep_alive: float = 60.0
) -> tuple[Scheduler, RecordingFactory]:
    factory = RecordingFactory()
    config = SchedulerConfig(budget=100 * MB, keep_alive=keep_alive)
    scheduler = Scheduler(config, factory, options)
    scheduler.start()
    return scheduler, factory


async def test_restart_drains_then_serves_new_requests_from_a_new_worker() -> None:
    sched, factory = _scheduler(OptionsSource(ModelOptions()))
    try:
        running = await sched.acquire(record("a"))
        assert await sched.restart("a") is True
        waiting = asyncio.create_task(sched.acquire(record("a")))
        await asyncio.sleep(0.05)
        assert not waiting.done() and factory.log == ["start a"]  # in flight: untouched
        running.release()
        fresh = await asyncio.wait_for(waiting, 2)
        assert factory.log == ["start a", "stop a", "start a"]
        assert fresh.worker_id != running.worker_id
        fresh.release()
        assert await sched.restart("b") is False  # not loaded: nothing to do
    finally:
        await sched.close()


async def test_pinning_and_keep_alive_come_from_the_config() -> None:
    options = OptionsSource(ModelOptions())
    sched, factory = _scheduler(options, keep_alive=0.05)
    try:
        options.use(ModelOptions(), parse_config("models:\n  a:\n    keep_alive: 0.1\n"))
        (await sched.acquire(record("a"))).release()
        row = (await sched.status()).models[0]
        assert row.keep_alive == 0.1
        # Pinned by a reload while its expiry is armed: it stays.
        options.use(ModelOptions(), parse_config("models:\n  a:\n    pinned: true\n"))
        await asyncio.sleep(0.2)
        assert factory.log == ["start a"]
        # Pinned models are not evicted: a model that needs their room cannot fit.
        sched.reconfigure(SchedulerConfig(budget=15 * MB, keep_alive=60.0))
        with pytest.raises(Exception, match="budget"):
            await sched.acquire(record("b"))
        assert factory.log == ["start a"]
    finally:
        await sched.close()
