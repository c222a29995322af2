"""Asking a port's `/health` who answers: our worker (status, model, pid, nonce) or a
server of another kind (an external command is ready once /health or /v1/models is 200).

Probes send no credentials: what answers may not be ours yet. Nothing here raises;
no answer is `Health()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

NONCE_ENV = "MLXCTL_WORKER_NONCE"


@dataclass(frozen=True)
class Health:
    status: str | None = None  # ok, loading, failed; None: no (usable) answer
    model: str | None = None
    pid: int | None = None
    nonce: str | None = None
    error: str | None = None

    def is_ours(self, pid: int | None, nonce: str | None) -> bool:
        """The answer comes from the process we started: its pid and our per-start nonce."""
        return pid is not None and self.pid == pid and nonce is not None and self.nonce == nonce


async def worker_health(client: httpx.AsyncClient, base_url: str, timeout: float = 2.0) -> Health:
    try:
        response = await client.get(f"{base_url}/health", timeout=timeout)
        body: Any = response.json()
    except (httpx.HTTPError, ValueError):
        return Health()  # not listening yet, mid-startup, or not JSON
    if not isinstance(body, dict):
        return Health()
    model = body.get("model")
    return Health(
        status=_text(body.get("status")),
        model=_text(model.get("id")) if isinstance(model, dict) else None,
        pid=body.get("pid") if isinstance(body.get("pid"), int) else None,
        nonce=_text(body.get("nonce")),
        error=_text(body.get("error")),
    )


async def external_health(client: httpx.AsyncClient, base_url: str, timeout: float = 2.0) -> Health:
    """`ok` once /health answers 200, or, for servers without one, /v1/models does."""
    try:
        response = await client.get(f"{base_url}/health", timeout=timeout)
        if response.status_code in (404, 405):
            response = await client.get(f"{base_url}/v1/models", timeout=timeout)
    except httpx.HTTPError:
        return Health()
    return Health(status="ok") if response.status_code == 200 else Health()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
