"""Pid files: what the daemon started, so the next daemon can reap or adopt it.

Each child gets `MLXCTL_HOME/run/<kind>/<name>.json` (mode 0600: it holds the
child's nonce): pid, argv[0], the process's create time, port, model, nonce, and
the daemon's pid for children tied to it (None for slot workers, which outlive it).
A pid is reused; a pid with the same create time and argv[0] is not, so `matches`
is how reaping and adoption tell our process from a stranger. `reap` SIGKILLs the
process group of tied children whose daemon is gone, external servers' helpers too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

log = logging.getLogger("mlxctl.supervision")

# psutil derives create times from clock ticks: the same process reads the same value.
_CREATED_SLACK = 0.05


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    argv0: str
    created: float
    port: int | None = None
    model: str | None = None
    nonce: str | None = None
    daemon_pid: int | None = None  # None: detached (a slot worker), never reaped

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def run_dir(home: Path, kind: str = "workers") -> Path:
    """`workers` for children tied to the daemon, `slots` for slot workers."""
    return home / "run" / kind


def create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def write(directory: Path, record: PidRecord) -> Path:
    """Raises OSError (a full disk, a folder we cannot write)."""
    written = path(directory, record.name)
    write_private(written, record.to_json())
    return written


def write_private(file: Path, text: str) -> None:
    """Write `text` atomically to a file readable by its owner only (created 0600)."""
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(file)


def read(file: Path) -> PidRecord | None:
    try:
        data = json.loads(file.read_text())
        return PidRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def forget(directory: Path, name: str, pid: int) -> None:
    """Remove `name`'s pid file if it still names `pid` (a newer start keeps its own)."""
    file = path(directory, name)
    found = read(file)
    if found is not None and found.pid == pid:
        file.unlink(missing_ok=True)


def matches(record: PidRecord) -> bool:
    """The recorded process still runs: same pid, create time and argv[0]."""
    try:
        proc = psutil.Process(record.pid)
        created = proc.create_time()
        argv = proc.cmdline()
    except psutil.Error:
        return False
    if abs(created - record.created) > _CREATED_SLACK:
        return False
    # Just after the spawn the launcher has not exec'd the command yet.
    return argv[:1] == [record.argv0] or "mlxctl.supervision.launch" in argv


def reap(directory: Path) -> list[int]:
    """Kill the groups of tied children whose daemon is gone; returns their pids."""
    killed: list[int] = []
    for file in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        found = read(file)
        if found is None:
            file.unlink(missing_ok=True)
            continue
        daemon = found.daemon_pid
        if daemon is None or (daemon != os.getpid() and psutil.pid_exists(daemon)):
            continue  # a slot worker, or a live daemon's child
        if matches(found) or _leaderless_group(found.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(found.pid, signal.SIGKILL)
                killed.append(found.pid)
                log.warning("killed %s (pid %d) left by a dead daemon", found.name, found.pid)
        file.unlink(missing_ok=True)
    return killed


def _leaderless_group(pgid: int) -> bool:
    """Members of group `pgid` live on though its leader is gone (an external server's
    helpers). No process holds that pid, so the group cannot be a stranger's."""
    if psutil.pid_exists(pgid):
        return False
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == pgid:
                return True
    return False
