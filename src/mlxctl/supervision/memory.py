"""Measured memory of a worker: RSS from the OS, MLX's counters from `/v1/worker/stats`.

Estimates plan the budget; these readings show what a worker really uses
(`mlxctl ps`, `/metrics`). Nothing here raises: a worker that does not answer
simply has no reading.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import httpx
import psutil

from mlxctl.supervision.base import MemoryReading


def rss(pid: int | None) -> int | None:
    """Resident set size of `pid` and its children (a worker may spawn helpers)."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        total = int(proc.memory_info().rss)
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(child.memory_info().rss)
        return total
    except psutil.Error:
        return None


async def fetch_stats(
    client: httpx.AsyncClient,
    base_url: str,
    timeout: float = 1.0,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The worker's `/v1/worker/stats` body, or None when it does not answer in time."""
    try:
        response = await client.get(f"{base_url}/v1/worker/stats", timeout=timeout, headers=headers)
        if response.status_code != 200:
            return None
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def reading(pid: int | None, stats: dict[str, Any] | None) -> MemoryReading:
    mlx = (stats or {}).get("memory")
    mlx = mlx if isinstance(mlx, dict) else {}
    return MemoryReading(
        rss=rss(pid),
        mlx_active=_int(mlx.get("active")),
        mlx_peak=_int(mlx.get("peak")),
        mlx_cache=_int(mlx.get("cache")),
    )


async def measure(
    client: httpx.AsyncClient,
    pid: int | None,
    base_url: str,
    headers: Mapping[str, str] | None = None,
) -> MemoryReading:
    return reading(pid, await fetch_stats(client, base_url, headers=headers))


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
