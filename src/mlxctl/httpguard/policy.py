"""What one HTTP server lets through: hosts, origins, key, body types and sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from mlxctl.httpguard.addresses import HostAllowList
from mlxctl.httpguard.origins import OriginList
from mlxctl.settings import Settings

__all__ = ["GuardPolicy", "RawBodyRoute"]


@dataclass(frozen=True)
class RawBodyRoute:
    """A route that takes raw bytes instead of JSON, e.g. Ollama's `POST /api/blobs/:digest`.

    The guard skips the Content-Type check and does not buffer the body: the route
    reads `request.stream()` itself. Beyond `max_bytes` (None: no cap; the route
    checks sizes and digests itself) the stream raises `BodyTooLarge`, answered 413.
    """

    method: str
    path: re.Pattern[str]
    max_bytes: int | None = None
    setting: str = "MLXCTL_MAX_BODY_BYTES"  # named in the 413 as what raises the cap

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path.fullmatch(path) is not None


@dataclass
class LivePolicy:
    """The policy in force, swapped whole when a config reload changes it."""

    current: GuardPolicy


@dataclass(frozen=True)
class GuardPolicy:
    hosts: HostAllowList
    origins: OriginList = field(default_factory=OriginList)
    api_key: str | None = None
    max_body_bytes: int = Settings.max_body_bytes
    # Paths answered without the key (liveness probes), still behind Host/Origin checks.
    open_paths: frozenset[str] = frozenset({"/health"})
    raw_body_routes: tuple[RawBodyRoute, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        bind_host: str,
        api_key: str | None,
        raw_body_routes: tuple[RawBodyRoute, ...] = (),
    ) -> GuardPolicy:
        return cls(
            hosts=HostAllowList.parse(bind_host, settings.allowed_hosts),
            origins=OriginList.parse(settings.origins),
            api_key=api_key or None,
            max_body_bytes=settings.max_body_bytes,
            raw_body_routes=raw_body_routes,
        )

    def with_settings(self, settings: Settings) -> GuardPolicy:
        """This policy with `settings`' allowed hosts, origins and body limit (a reload);
        the key, the bind address and the routes stay what the server started with."""
        return replace(
            self,
            hosts=HostAllowList.parse(self.hosts.bind_host, settings.allowed_hosts),
            origins=OriginList.parse(settings.origins),
            max_body_bytes=settings.max_body_bytes,
        )

    def raw_route(self, method: str, path: str) -> RawBodyRoute | None:
        return next((r for r in self.raw_body_routes if r.matches(method, path)), None)
