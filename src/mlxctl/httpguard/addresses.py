"""Which addresses count as this machine, and which Host headers a server answers.

A DNS-rebinding page reaches a loopback server under the attacker's own name
(`Host: attacker.example`), so a server answers only names that cannot be
rebound: loopback names and IP literals, the address it is bound to, the names
a user lists in MLXCTL_ALLOWED_HOSTS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from mlxctl.errors import InvalidInput

__all__ = ["HostAllowList", "check_bind", "is_loopback", "split_host"]

_UNSPECIFIED = ("", "0.0.0.0", "::", "*")


def is_loopback(host: str) -> bool:
    """`localhost`, `127.x.y.z`, `::1` or `[::1]`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, *, what: str = "listen", setting: str = "") -> None:
    """Refuse to serve beyond this machine without an API key (`serve`, `worker`, slots)."""
    if is_loopback(host) or api_key:
        return
    where = f"set {setting}=127.0.0.1" if setting else "listen on 127.0.0.1"
    raise InvalidInput(
        f"refusing to {what} on {host} without an API key: anyone who can reach it "
        "could run models here",
        hint=f"set MLXCTL_API_KEY (clients then send `Authorization: Bearer <key>`), or {where}",
    )


def split_host(value: str) -> tuple[str, int | None]:
    """`name`, `name:port`, `[v6]:port` or a bare IPv6 address → (lowercase host, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host.rstrip("."), int(port) if port.isdigit() else None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class HostAllowList:
    """The Host header values one server answers (ports are not compared unless listed)."""

    bind_host: str
    extra: tuple[str, ...] = ()

    @classmethod
    def parse(cls, bind_host: str, listed: str | Iterable[str]) -> HostAllowList:
        items = listed.split(",") if isinstance(listed, str) else listed
        return cls(bind_host, tuple(i.strip().lower() for i in items if i.strip()))

    def allows(self, header: str | None) -> bool:
        if not header:
            return True  # HTTP/1.0 without Host: no browser sends that
        host, port = split_host(header)
        if host == "localhost" or host.endswith(".localhost"):
            return True  # browsers resolve *.localhost to loopback themselves: never rebound
        address = _ip(host)
        if address is not None and address.is_loopback:
            return True
        bound = split_host(self.bind_host)[0]
        if bound in _UNSPECIFIED:
            # Listening everywhere: any of our addresses is fine, and an IP literal cannot
            # be rebound; the machine's own name too.
            if address is not None or host in _own_names():
                return True
        elif host == bound:
            return True
        return any(_matches(entry, host, port) for entry in self.extra)


def _matches(entry: str, host: str, port: int | None) -> bool:
    if entry == "*":
        return True
    want_host, want_port = split_host(entry)
    if want_port is not None and want_port != port:
        return False
    if want_host.startswith("*."):
        return host.endswith(want_host[1:])
    return host == want_host


def _own_names() -> set[str]:
    name = socket.gethostname().lower().rstrip(".")
    short = name.split(".")[0]
    return {name, short, f"{short}.local"}
