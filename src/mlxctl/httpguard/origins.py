"""Which web origins may call a server from a browser, and the CORS headers they get.

Browsers put `Origin` on every cross-site request (and on same-origin POSTs). A
request whose origin is neither the server itself nor listed in MLXCTL_ORIGINS is
refused: that is what stops a page on another site from driving a localhost
server. Listed origins get proper CORS answers, so a web UI the user chose works.
Patterns work like OLLAMA_ORIGINS: `http://localhost:*`, `app://*`, `*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlxctl.httpguard.addresses import split_host

__all__ = ["ALLOW_HEADERS", "EXPOSE_HEADERS", "OriginList", "preflight_headers", "same_origin"]

# What browser clients of our dialects send: the OpenAI, Anthropic and Ollama SDKs.
ALLOW_HEADERS = (
    "authorization",
    "content-type",
    "x-api-key",
    "x-request-id",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
)
EXPOSE_HEADERS = "x-request-id, retry-after, www-authenticate"
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
MAX_AGE = "600"
_TOKEN = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class OriginList:
    """Origins allowed beyond the server's own (MLXCTL_ORIGINS), as compiled patterns."""

    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, listed: str | Iterable[str]) -> OriginList:
        items = listed.split(",") if isinstance(listed, str) else listed
        return cls(tuple(_compile(i.strip()) for i in items if i.strip()))

    def allows(self, origin: str) -> bool:
        return any(p.fullmatch(origin.lower()) for p in self.patterns)


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern == "*":
        return re.compile(".*", re.DOTALL)
    # `*` stands for any run of characters but `/`: `http://localhost:*` is any port.
    parts = (re.escape(part) for part in pattern.lower().rstrip("/").split("*"))
    return re.compile("[^/]*".join(parts))


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether `origin` (scheme://host[:port]) names the server the request was sent to."""
    scheme, sep, netloc = origin.lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not host_header or "/" in netloc:
        return False
    default = _DEFAULT_PORTS[scheme]
    o_host, o_port = split_host(netloc)
    h_host, h_port = split_host(host_header)
    return o_host == h_host and (o_port or default) == (h_port or default)


def preflight_headers(
    origin: str, requested: str | None, private_network: bool
) -> list[tuple[str, str]]:
    """A 204's headers for an allowed origin's preflight: our list plus what it asks for."""
    names = list(ALLOW_HEADERS)
    for name in (requested or "").split(","):
        name = name.strip().lower()
        if name and _TOKEN.match(name) and name not in names:
            names.append(name)
    headers = [
        ("access-control-allow-origin", origin),
        ("access-control-allow-methods", ALLOW_METHODS),
        ("access-control-allow-headers", ", ".join(names)),
        ("access-control-max-age", MAX_AGE),
        ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    ]
    if private_network:  # Chrome's Private Network Access asks before a page calls localhost
        headers.append(("access-control-allow-private-network", "true"))
    return headers
