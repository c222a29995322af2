"""Notice the exit of any process, ours or not, the moment it happens.

A pidfd (Linux) or a kqueue `NOTE_EXIT` filter (macOS) is a descriptor that turns
readable when the process ends; the daemon waits on it in its event loop
(`handle.wait_exit`), the launcher's parent watch in a blocking `select`. Where
neither exists the process is polled. Stdlib only and no asyncio: the launcher
imports this and must start fast.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time

POLL_SECONDS = 0.2


class ExitFd:
    """A descriptor that becomes readable once `pid` has exited (or None: poll instead)."""

    def __init__(self, fd: int, owner: object) -> None:
        self._fd = fd
        self._owner = owner  # the kqueue object keeps its descriptor open

    @classmethod
    def open(cls, pid: int) -> ExitFd | None:
        """None when this platform offers no such descriptor; ProcessLookupError when gone."""
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                return cls(pidfd_open(pid), None)
            except ProcessLookupError:
                raise
            except OSError:
                return None  # a kernel before 5.3
        return _kqueue_exit(pid)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._owner is not None:
            self._owner.close()  # type: ignore[attr-defined]
        else:
            with contextlib.suppress(OSError):
                os.close(self._fd)


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
    try:
        watch = ExitFd.open(pid)
    except ProcessLookupError:
        return
    if watch is None:
        while running(pid):
            time.sleep(POLL_SECONDS)
        return
    try:
        select.select([watch.fileno()], [], [])
    finally:
        watch.close()
