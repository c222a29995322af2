"""The daemon's registered models, as its OpenAI `GET /v1/models` lists them.

Kept beside `DaemonClient` until it has a `models()` method of its own.
"""

from __future__ import annotations

from typing import Any

from mlxctl.client.daemon import DaemonClient


def registered_models(client: DaemonClient) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client._call("GET", "/v1/models").get("data") or []
    return data
