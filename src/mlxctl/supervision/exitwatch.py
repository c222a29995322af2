"""Notice the exit of any process, ours or not, the moment it happens.

A pidfd (Linux) or a kqueue `NOTE_EXIT` filter (macOS) is a descriptor that turns
readable when the process ends; the daemon waits on it in its event loop
(`handle.wait_exit`), the launcher's parent watch in a blocking `select`. Where
neither exists a thread polls the process and writes to a pipe. Stdlib only and
no asyncio: the launcher imports this and must start fast.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import Protocol

POLL_SECONDS = 0.2


class _Closable(Protocol):
    def close(self) -> None: ...


class ExitFd:
    """A descriptor that becomes readable once a process has exited."""

    def __init__(self, fd: int, owner: _Closable | None) -> None:
        self._fd = fd
        self._owner = owner  # what holds the descriptor (a kqueue, a pipe), if not just fd

    @classmethod
    def open(cls, pid: int) -> ExitFd | None:
        """None when `pid` has already gone."""
        try:
            return _pidfd(pid) or _kqueue_exit(pid) or _polled(pid)
        except ProcessLookupError:
            return None

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._owner is not None:
            self._owner.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _pidfd(pid: int) -> ExitFd | None:
    """Linux 5.3+: a pidfd turns readable when the process ends."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return ExitFd(pidfd_open(pid), None)
    except ProcessLookupError:
        raise
    except OSError:
        return None  # an older kernel


def _kqueue_exit(pid: int) -> ExitFd | None:
    """macOS and the BSDs: a kqueue with one NOTE_EXIT filter, readable at the exit."""
    if sys.platform == "linux" or not hasattr(select, "kqueue"):
        return None
    queue = select.kqueue()
    event = select.kevent(
        pid,
        filter=select.KQ_FILTER_PROC,
        flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
        fflags=select.KQ_NOTE_EXIT,
    )
    try:
        queue.control([event], 0, 0)
    except ProcessLookupError:
        queue.close()
        raise
    except OSError:
        queue.close()
        return None
    return ExitFd(queue.fileno(), queue)


class _Pipe:
    def __init__(self, *fds: int) -> None:
        self.fds = fds

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _polled(pid: int) -> ExitFd:
    """Elsewhere: a thread polls the pid and writes to a pipe once it has gone."""
    if not running(pid):
        raise ProcessLookupError(pid)
    import threading  # only on this rare path: the launcher must start fast

    read_end, write_end = os.pipe()

    def poll() -> None:
        while running(pid):
            time.sleep(POLL_SECONDS)
        with contextlib.suppress(OSError):
            os.write(write_end, b"x")

    threading.Thread(target=poll, daemon=True, name=f"exit-{pid}").start()
    return ExitFd(read_end, _Pipe(read_end, write_end))


def running(pid: int) -> bool:
    """The process exists (a zombie counts as ended where /proc can tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def block_until_exit(pid: int) -> None:
    """Return once `pid` has ended, blocking (a thread of the launcher)."""
    watch = ExitFd.open(pid)
    if watch is None:
        return
    try:
        select.select([watch.fileno()], [], [])
    finally:
        watch.close()
