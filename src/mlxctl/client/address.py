"""MLXCTL_HOST: where the daemon listens and where the CLI finds it.

Accepts `host:port`, `host`, `:port`, `http://host:port` and `[::1]:port`.
A daemon listening on a wildcard (0.0.0.0, ::) is reached on the loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from mlxctl.errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11500


@dataclass(frozen=True)
class Address:
    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The URL a client uses (a wildcard bind address becomes the loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": DEFAULT_HOST}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(value: str) -> Address:
    text = value.strip() or f"{DEFAULT_HOST}:{DEFAULT_PORT}"
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise InvalidInput(f"MLXCTL_HOST={value!r} is not host:port ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"MLXCTL_HOST={value!r}: the scheme must be http or https")
    if parts.path not in ("", "/"):
        raise InvalidInput(f"MLXCTL_HOST={value!r}: give host:port without a path")
    default_port = 443 if parts.scheme == "https" else DEFAULT_PORT
    return Address(parts.scheme, parts.hostname or DEFAULT_HOST, port or default_port)
