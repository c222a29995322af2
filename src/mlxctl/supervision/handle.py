"""A handle on one running process: its exit noticed at once, and SIGTERM → SIGKILL.

Works for a child this daemon spawned (its exit code is collected), a slot worker
a previous daemon started (adopted: the exit is seen, the code is not), and a
foreign MLX server about to be replaced. Signals go to the process group when the
process leads one, so whatever it started goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable

from mlxctl.supervision.exitwatch import ExitFd

log = logging.getLogger("mlxctl.supervision")

# After SIGKILL a process normally vanishes at once; one stuck in the kernel may not.
KILL_WAIT = 5.0
# How long the rest of a group (the log pump) gets to finish after its leader exited.
GROUP_DRAIN = 1.0


def leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


async def wait_exit(pid: int) -> None:
    """Return once `pid` has ended: on the event loop, without a thread."""
    watch = ExitFd.open(pid)
    if watch is None:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(watch.fileno(), readable)
    try:
        await done
    finally:
        loop.remove_reader(watch.fileno())
        watch.close()


class ProcessHandle:
    """Must be created on the event loop: a task starts watching for the exit at once."""

    def __init__(
        self,
        pid: int,
        popen: subprocess.Popen[bytes] | None = None,
        *,
        group: bool | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.pid = pid
        self.group = leads_group(pid) if group is None else group
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self._popen = popen
        self._on_exit = on_exit
        self._task = asyncio.get_running_loop().create_task(self._watch(), name=f"exit-{pid}")

    async def _watch(self) -> None:
        await wait_exit(self.pid)
        if self._popen is not None:
            self.returncode = self._popen.wait()  # a zombie by now: reaped without blocking
        if self._on_exit is not None:
            self._on_exit()
        self.exited.set()

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    async def wait(self, timeout: float | None = None) -> bool:
        """True once exited; False when `timeout` passed first."""
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def terminate(self, grace: float) -> None:
        """SIGTERM, SIGKILL after `grace` s; returns once it exited (bounded after SIGKILL)."""
        if not self.exited.is_set():
            self.signal(signal.SIGTERM)
            if not await self.wait(grace):
                log.warning("pid %d ignored SIGTERM for %g s; killing it", self.pid, grace)
                self.signal(signal.SIGKILL)
                if not await self.wait(KILL_WAIT):
                    log.error("pid %d has not exited %g s after SIGKILL", self.pid, KILL_WAIT)
        if self.group:
            await self._group_empty(GROUP_DRAIN)  # the log pump writes the last lines
            self.signal(signal.SIGKILL)  # anything it left in its group

    async def _group_empty(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                os.killpg(self.pid, 0)
            except OSError:
                return
            await asyncio.sleep(0.02)

    def kill_now(self) -> None:
        """Synchronous last resort (interpreter exit): SIGKILL, if still running."""
        if not self.exited.is_set():
            self.signal(signal.SIGKILL)

    def detach(self) -> None:
        """Stop watching (the daemon is closing and leaves the process running)."""
        self._task.cancel()
