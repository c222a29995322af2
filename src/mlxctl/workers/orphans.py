"""Pid files for running workers, so a daemon that died hard can clean up at next start.

Linux workers die with the daemon (PR_SET_PDEATHSIG); elsewhere a daemon killed
with SIGKILL can leave workers behind. Each worker gets
`MLXCTL_HOME/run/workers/<slug>.json` (pid, port, daemon pid); `reap` kills the
process group of any whose daemon is gone, if the process still looks like a worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import psutil

log = logging.getLogger("mlxctl.workers")


def run_dir(home: Path) -> Path:
    return home / "run" / "workers"


def record(directory: Path, slug: str, pid: int, port: int | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"slug": slug, "pid": pid, "port": port, "daemon_pid": os.getpid()}
    tmp = directory / f".{slug}.json.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(directory / f"{slug}.json")


def forget(directory: Path, slug: str, pid: int) -> None:
    path = directory / f"{slug}.json"
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def reap(directory: Path) -> list[int]:
    """Kill workers left by a daemon that is no longer running; returns their pids."""
    killed: list[int] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            pid, daemon_pid = int(data["pid"]), int(data["daemon_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if daemon_pid != os.getpid() and psutil.pid_exists(daemon_pid):
            continue  # another daemon's live worker
        if _looks_like_worker(pid, str(data.get("slug", ""))):
            try:
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
                log.warning("killed worker %s (pid %d) left by a dead daemon", data["slug"], pid)
            except (ProcessLookupError, PermissionError):
                pass
        path.unlink(missing_ok=True)
    return killed


def _looks_like_worker(pid: int, slug: str) -> bool:
    # Pids are reused: only a process still running a worker for this model qualifies.
    try:
        cmdline = psutil.Process(pid).cmdline()
        leads_group = os.getpgid(pid) == pid
    except (psutil.Error, OSError):
        return False
    return leads_group and slug in cmdline and "--port" in cmdline
