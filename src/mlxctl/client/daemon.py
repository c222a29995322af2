"""The HTTP client the CLI uses to talk to `mlxctl serve`.

Every call returns decoded JSON or raises an `MlxctlError` with one clear line:
no daemon → Unavailable("no mlxctl daemon at …: start one with `mlxctl serve`");
an error answer → its OpenAI-envelope message (and the admin API's `hint`), as
NotFound / InvalidInput / Conflict / Forbidden / Unavailable by status. `run(op, args)` calls
one of the registry and store operations (`mlxctl.operations`) on the daemon.
Before the key first goes over plain http to another machine, it warns once on
stderr (anyone on the path could read it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from mlxctl.client.address import parse_address
from mlxctl.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MlxctlError,
    NotFound,
    Unavailable,
)
from mlxctl.httpguard.addresses import is_loopback
from mlxctl.operations.base import Args, Operation, Result
from mlxctl.settings import Settings
from mlxctl.store.progress import Progress, replay

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

    def peers(self) -> dict[str, Any]:
        """This daemon's host name and its peers as last read (`GET /api/admin/peers`)."""
        return self._call("GET", "/api/admin/peers")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/admin/status")

    def load(
        self,
        model: str,
        keep_alive: str | None = None,
        preset: str | None = None,
        shard: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        if preset is not None:
            body["preset"] = preset
        if shard is not None:
            body["shard"] = shard
        return self._call("POST", "/api/admin/load", json=body, timeout=LOAD_TIMEOUT)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/api/admin/config")

    def reload_config(self) -> dict[str, Any]:
        return self._call("POST", "/api/admin/config/reload", timeout=LOAD_TIMEOUT)

    def unload(self, model: str) -> dict[str, Any]:
        return self._call("POST", "/api/admin/unload", json={"model": model}, timeout=LOAD_TIMEOUT)

    # Slots ----------------------------------------------------------------------

    def slots(self) -> list[dict[str, Any]]:
        slots: list[dict[str, Any]] = self._call("GET", "/api/admin/slots")["slots"]
        return slots

    def names_a_slot(self, reference: str) -> bool:
        """A port number, or one of the daemon's slot aliases (an alias wins over a slug)."""
        text = reference.strip().lower()
        return text.isdigit() or any(slot["alias"] == text for slot in self.slots())

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

    # Registry and store operations --------------------------------------------------

    def run(self, op: Operation[Any], args: Args, progress: Progress | None = None) -> Result:
        """One of `mlxctl.operations` on the daemon; streamed progress goes to `progress`."""
        if op.method == "GET":
            return self._call("GET", op.path)
        body = args.model_dump(mode="json", exclude_unset=True)
        if not op.streams:
            return self._call("POST", op.path, json=body, timeout=LOAD_TIMEOUT)
        result: Result | None = None
        with (
            talking(self.base_url),
            self._http.stream("POST", op.path, json=body, timeout=LOAD_TIMEOUT) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise error_from(response)
            for raw in response.iter_lines():
                event = json.loads(raw) if raw.strip() else {}
                if "error" in event:
                    raise error_for(int(event.get("status") or 500), event)
                if "result" in event:
                    result = event["result"]
                elif event and progress is not None:
                    replay(event, progress)
        if result is None:
            raise Unavailable(f"{self.base_url}{op.path} ended without a result")
        return result

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
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_for(response.status_code, body, response.headers.get("retry-after"))


def error_for(status: int, body: object, retry_after: str | None = None) -> MlxctlError:
    """An error answer (`{"error": {"message", "hint"?}}` or `{"error": "..."}`) by status."""
    message, hint = f"the daemon answered {status}", None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        message = str(error["message"])
        hint = str(error["hint"]) if error.get("hint") else None
    elif isinstance(error, str):
        message = error
    if status == 401:
        return InvalidInput(message, hint="set MLXCTL_API_KEY to the daemon's key")
    if status == 404:
        return NotFound(message, hint=hint)
    if status in (400, 413, 422):
        return InvalidInput(message, hint=hint)
    if status == 409:
        return Conflict(message, hint=hint)
    if status == 403:
        return Forbidden(message, hint=hint)
    return Unavailable(message, hint=hint or (f"retry in {retry_after} s" if retry_after else None))
