"""Noticing a process's exit: by descriptor where the OS has one, by polling elsewhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

from mlxctl.supervision.exitwatch import ExitFd, block_until_exit
from mlxctl.supervision.handle import wait_exit


@pytest.fixture(params=["descriptor", "polling"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "polling":
        monkeypatch.delattr(os, "pidfd_open", raising=False)  # as on an old kernel
    return str(request.param)


def sleeper(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_block_until_exit_returns_when_any_process_ends(way: str) -> None:
    proc = sleeper(60)
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (block_until_exit(proc.pid), done.set()))
    waiter.start()
    assert not done.wait(0.5)  # still running: still waiting
    proc.kill()
    assert done.wait(5)
    proc.wait()
    waiter.join()


def test_wait_exit_on_the_event_loop(way: str) -> None:
    proc = sleeper(0.5)

    async def main() -> float:
        started = time.monotonic()
        await asyncio.wait_for(wait_exit(proc.pid), 10)
        return time.monotonic() - started

    assert 0.2 < asyncio.run(main()) < 5
    proc.wait()


def test_a_process_already_gone_needs_no_wait() -> None:
    proc = sleeper(0)
    proc.wait()
    assert ExitFd.open(proc.pid) is None
    block_until_exit(proc.pid)  # returns at once
