"""The launcher: a few lines of Python between the daemon and every child it runs.

    python -m mlxctl.supervision.launch LOG MAX_BYTES BACKUPS PARENT -- COMMAND ARGS...

(PARENT 0: a child not tied to the daemon.)

It forks a log pump, then `exec`s COMMAND in its own place, so the pid the daemon
got from `Popen` is the worker's (or the external server's) own, and it leads the
process group the daemon signals. The pump reads the child's stdout and stderr
from a pipe and writes them through the standard library's `RotatingFileHandler`,
so a log rotates while the child runs, whatever the child is (our worker, an
external server that knows nothing of rotation) and whether or not the daemon
still lives (slot workers outlive it). The pump ignores SIGTERM and ends at EOF, so
a stopping child's last lines are kept.

With a PARENT (workers tied to the daemon) the child asks Linux for SIGKILL on
the daemon's death (PR_SET_PDEATHSIG, set here in the child itself rather than in
a `preexec_fn`, which is unsafe in a threaded daemon) and checks that the daemon
did not die before that took effect; and the pump watches the daemon (pidfd or
kqueue, macOS included) and kills the whole group when it goes, grandchildren of
external servers too. Stdlib only, so it starts fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import NamedTuple, NoReturn

from mlxctl.supervision.exitwatch import block_until_exit

_PR_SET_PDEATHSIG = 1
_LINE_BYTES = 1 << 16  # a longer line is written in pieces


class Launch(NamedTuple):
    """What the launcher is told (a NamedTuple: dataclasses would slow every start)."""

    log: str
    max_bytes: int
    backups: int
    parent: int | None
    command: list[str]

    def argv(self, python: str) -> list[str]:
        """The argv that runs the command under the launcher (the daemon's side)."""
        argv = [python, "-m", "mlxctl.supervision.launch", self.log]
        argv += [str(self.max_bytes), str(self.backups), str(self.parent or 0)]
        return [*argv, "--", *self.command]

    @classmethod
    def parse(cls, argv: list[str]) -> Launch:
        """No argparse: it would cost every start some 30 ms of imports."""
        if len(argv) < 6 or argv[4] != "--":
            sys.exit(
                "usage: python -m mlxctl.supervision.launch LOG MAX_BYTES BACKUPS PARENT -- CMD"
            )
        log, max_bytes, backups, parent = argv[:4]
        return cls(log, int(max_bytes), int(backups), int(parent) or None, argv[5:])


def main(argv: list[str] | None = None) -> NoReturn:
    args = Launch.parse(sys.argv[1:] if argv is None else argv)
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        # Fork twice so the pump is nobody's child: the worker never has to reap it.
        if os.fork() == 0:
            os.close(write_end)
            _pump(read_end, args)
        os._exit(0)
    os.waitpid(middle, 0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    if args.parent is not None:
        _die_with(args.parent)
    try:
        os.execvp(args.command[0], args.command)
    except OSError as e:
        os.write(2, f"mlxctl: cannot run {args.command[0]}: {e}\n".encode())
        os._exit(127)


def _die_with(parent: int) -> None:
    """SIGKILL when the daemon dies (Linux); gone already → exit now."""
    if sys.platform.startswith("linux"):
        import ctypes  # only here: the one child that needs it

        # The process's own symbols include libc's prctl (no find_library: it runs ldconfig).
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _pump(read_end: int, args: Launch) -> NoReturn:
    # Imported after the fork: the command's exec never waits for them.
    import logging
    import threading
    from logging.handlers import RotatingFileHandler

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if args.parent is not None:
        threading.Thread(target=_end_group_with, args=(args.parent,), daemon=True).start()
    handler = RotatingFileHandler(
        args.log, maxBytes=max(0, args.max_bytes), backupCount=max(0, args.backups)
    )
    handler.terminator = ""
    handler.setFormatter(logging.Formatter("%(message)s"))
    with os.fdopen(read_end, "rb") as pipe:
        while line := pipe.readline(_LINE_BYTES):
            handler.emit(logging.makeLogRecord({"msg": line.decode(errors="replace")}))
    handler.close()
    os._exit(0)


def _end_group_with(parent: int) -> None:
    block_until_exit(parent)
    with contextlib.suppress(OSError):
        os.killpg(0, signal.SIGKILL)  # this pump goes with its group


if __name__ == "__main__":
    main()
