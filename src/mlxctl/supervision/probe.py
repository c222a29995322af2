"""What listens on a port: its pid, its command line, and whether it is an MLX server.

Listeners come from psutil's `net_connections` (on Linux, /proc/net/tcp mapped to
pids through /proc/*/fd); a port with a listener whose pid cannot be seen (another
user's process) still counts as taken, found by connecting to it.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Listener:
    pid: int | None
    command: str | None

    @property
    def mlx_kind(self) -> str | None:
        return mlx_kind(self.command)

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "an unknown process"
        return f"{who} ({self.command})" if self.command else who


def mlx_kind(command: str | None) -> str | None:
    """'mlxctl worker', 'mlx_lm.server' or 'mlx-openai-server' when the command is one."""
    if not command:
        return None
    words = command.split()
    joined = " ".join(words)
    if "mlxctl.supervision.fake" in joined:
        return "mlxctl worker"  # the test stand-in speaks the same contract
    if any(w.endswith("mlxctl") or w == "mlxctl.cli.main" for w in words) and "worker" in words:
        return "mlxctl worker"
    if "mlx_lm.server" in joined or any(w.endswith("mlx_lm.server") for w in words):
        return "mlx_lm.server"
    if any(w.endswith("mlx-openai-server") or w == "mlx_openai_server" for w in words):
        return "mlx-openai-server"
    return None


def listener(port: int, host: str = "127.0.0.1") -> Listener | None:
    """Who listens on `port` (any local address), or None when nobody does."""
    try:
        pid = _listening_pid(psutil.net_connections(kind="tcp"), port)
    except psutil.AccessDenied:
        pid = _own_listener(port)  # macOS lists all sockets only to root
    except (psutil.Error, OSError):
        pid = None
    if pid is not None and alive(pid):
        return Listener(pid, command_of(pid))
    return Listener(None, None) if accepts(host, port) else None


def with_pid(found: Listener, pid: object, port: int) -> Listener:
    """Fill an unseen listener's pid from what it says about itself (a worker's /health),
    believed only when that process's command line names this port."""
    if found.pid is not None or isinstance(pid, bool) or not isinstance(pid, int):
        return found
    command = command_of(pid) if alive(pid) else None
    if command is None or f"--port {port}" not in command:
        return found
    return Listener(pid, command)


def _listening_pid(conns: list[Any], port: int) -> int | None:
    for conn in conns:
        listens = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if listens and conn.pid is not None:
            return int(conn.pid)
    return None


def _own_listener(port: int) -> int | None:
    """This user's processes, one at a time (each may be asked for its own sockets)."""
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid
    return None


def accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return True
    except OSError:
        return False


def command_of(pid: int) -> str | None:
    try:
        return shlex.join(psutil.Process(pid).cmdline()) or None
    except psutil.Error:
        return None


def alive(pid: int) -> bool:
    """Running and not a zombie (a dead child not yet reaped still has a pid)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
