"""The HTTP client the CLI uses to talk to `mlxctl serve`.

Every call returns decoded JSON or raises an `MlxctlError` with one clear line:
no daemon → Unavailable("no mlxctl daemon at …: start one with `mlxctl serve`");
an error answer → its OpenAI-envelope message, as NotFound / InvalidInput /
Conflict / Unavailable by status. Before the key first goes over plain http to
another machine, it warns once on stderr (anyone on the path could read it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from mlxctl.client.address import parse_address
from mlxctl.errors import Conflict, InvalidInput, MlxctlError, NotFound, Unavailable
from mlxctl.httpguard.addresses import is_loopback
from mlxctl.settings import Settings

# Loading a model can take minutes; everything else answers at once.
LOAD_TIMEOUT = 900.0
TIMEOUT = 30.0


_warned: set[str] = set()


def warn_plain_http(base_url: str) -> None:
    """Once per process and address: the key is about to cross the network unencrypted."""
    url = httpx.URL(base_url)
    if url.scheme != "http" or is_loopback(url.host) or base_url in _warned:
        return
    _warned.add(base_url)
    sys.stderr.write(
        f"warning: sending MLXCTL_API_KEY to {base_url} over plain http: anyone on the "
        "network path can read it. Put the daemon behind an https reverse proxy and set "
        "MLXCTL_HOST=https://..., or reach it through an SSH tunnel.\n"
    )


class DaemonClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        if api_key:
            warn_plain_http(self.base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DaemonClient:
        settings = settings or Settings.from_env()
        return cls(parse_address(settings.host).url, settings.api_key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The admin API ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def ps(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = self._call("GET", "/api/admin/ps")["models"]
        return models

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/admin/status")

    def load(self, model: str, keep_alive: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        return self._call("POST", "/api/admin/load", json=body, timeout=LOAD_TIMEOUT)

    def unload(self, model: str) -> dict[str, Any]:
        return self._call("POST", "/api/admin/unload", json={"model": model}, timeout=LOAD_TIMEOUT)

    # Slots ----------------------------------------------------------------------

    def slots(self) -> list[dict[str, Any]]:
        slots: list[dict[str, Any]] = self._call("GET", "/api/admin/slots")["slots"]
        return slots

    def load_slot(self, model: str, slot: str | int, force: bool = False) -> dict[str, Any]:
        body = {"model": model, "slot": slot, "force": force}
        return self._call("POST", "/api/admin/slots/load", json=body, timeout=LOAD_TIMEOUT)

    def unload_slot(self, slot: str | int) -> dict[str, Any]:
        body = {"slot": slot}
        return self._call("POST", "/api/admin/slots/unload", json=body, timeout=LOAD_TIMEOUT)

    def unload_all(self) -> dict[str, Any]:
        body = {"confirm": True}
        return self._call("POST", "/api/admin/slots/unload-all", json=body, timeout=LOAD_TIMEOUT)

    def reconcile(self) -> dict[str, Any]:
        return self._call("POST", "/api/admin/slots/reconcile", timeout=LOAD_TIMEOUT)

    def verify(self, strict: bool = False) -> dict[str, Any]:
        params = {"strict": "1" if strict else "0"}
        return self._call("GET", "/api/admin/slots/verify", params=params)

    # Plumbing ---------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        """The underlying client, for streamed calls (wrap them in `talking`)."""
        return self._http

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with talking(self.base_url):
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from(response)
        try:
            body = response.json()
        except ValueError:
            raise Unavailable(f"{self.base_url}{path} did not answer JSON") from None
        if not isinstance(body, dict):
            raise Unavailable(
                f"{self.base_url}{path} answered {type(body).__name__}, not an object"
            )
        return body


@contextmanager
def talking(base_url: str) -> Iterator[None]:
    """Transport failures inside the block become one clear `Unavailable` line."""
    try:
        yield
    except httpx.ConnectError:
        hint = "start one with `mlxctl serve`"
        raise Unavailable(f"no mlxctl daemon at {base_url}: {hint}") from None
    except httpx.TimeoutException:
        raise Unavailable(f"the mlxctl daemon at {base_url} did not answer in time") from None
    except httpx.HTTPError as e:
        raise Unavailable(f"cannot talk to the mlxctl daemon at {base_url}: {e}") from None


def error_from(response: httpx.Response) -> MlxctlError:
    """The daemon's error envelope as the matching MlxctlError."""
    message = f"the daemon answered {response.status_code}"
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    status = response.status_code
    if status == 401:
        return InvalidInput(message, hint="set MLXCTL_API_KEY to the daemon's key")
    if status == 404:
        return NotFound(message)
    if status in (400, 422):
        return InvalidInput(message)
    if status == 409:
        return Conflict(message)
    retry = response.headers.get("retry-after")
    return Unavailable(message, hint=f"retry in {retry} s" if retry else None)
