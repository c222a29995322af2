"""The launcher: a few lines of Python between the daemon and every child it runs.

    python -m mlxctl.supervision.launch --log PATH --max-bytes N --backups K
        [--parent PID] -- COMMAND ARGS...

It forks a log pump, then `exec`s COMMAND in its own place, so the pid the daemon
got from `Popen` is the worker's (or the external server's) own, and it leads the
process group the daemon signals. The pump reads the child's stdout and stderr
from a pipe and writes them through the standard library's `RotatingFileHandler`,
so a log rotates while the child runs, whatever the child is (our worker, an
external server that knows nothing of rotation) and whether or not the daemon
still lives (slot workers outlive it). The pump ignores SIGTERM and ends at EOF, so
a stopping child's last lines are kept.

With `--parent` (workers tied to the daemon) the child asks Linux for SIGKILL on
the daemon's death (PR_SET_PDEATHSIG, set here in the child itself rather than in
a `preexec_fn`, which is unsafe in a threaded daemon) and checks that the daemon
did not die before that took effect; and the pump watches the daemon (pidfd or
kqueue, macOS included) and kills the whole group when it goes, grandchildren of
external servers too. Stdlib only, so it starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from logging.handlers import RotatingFileHandler
from typing import NoReturn

from mlxctl.supervision.exitwatch import block_until_exit

_PR_SET_PDEATHSIG = 1
_LINE_BYTES = 1 << 16  # a longer line is written in pieces


def launcher_argv(
    python: str, log: str, max_bytes: int, backups: int, parent: int | None, command: list[str]
) -> list[str]:
    """The argv that runs `command` under the launcher (the daemon's side of the contract)."""
    argv = [python, "-m", "mlxctl.supervision.launch", "--log", log]
    argv += ["--max-bytes", str(max_bytes), "--backups", str(backups)]
    if parent is not None:
        argv += ["--parent", str(parent)]
    return [*argv, "--", *command]


def main(argv: list[str] | None = None) -> NoReturn:
    args = _parse(sys.argv[1:] if argv is None else argv)
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


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlxctl-launch")
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-bytes", type=int, required=True)
    parser.add_argument("--backups", type=int, required=True)
    parser.add_argument("--parent", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command to run")
    return args


def _die_with(parent: int) -> None:
    """SIGKILL when the daemon dies (Linux); gone already → exit now."""
    if sys.platform.startswith("linux"):
        # The process's own symbols include libc's prctl (no find_library: it runs ldconfig).
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _pump(read_end: int, args: argparse.Namespace) -> NoReturn:
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
