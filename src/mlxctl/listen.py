"""Listening sockets for the daemon and its workers, bound before the app starts."""

from __future__ import annotations

import socket

from mlxctl.errors import Conflict


def bind(host: str, port: int) -> socket.socket:
    """A bound, inheritable TCP socket (IPv6 when `host` is an IPv6 address); port 0 = any."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listener says TCP, and without it each streamed chunk can wait 40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise Conflict(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="another process holds the port: choose another with --port",
        ) from None
    sock.set_inheritable(True)
    return sock
