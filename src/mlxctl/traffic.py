"""Request counts and latency histograms a worker keeps, in a shape the daemon exports.

A worker counts every request it answers, whoever sent it: the daemon, or a gateway
talking to a slot's port directly. `Traffic.snapshot()` is the `traffic` object of its
`/v1/worker/stats`; the daemon's `/metrics` turns it into per-slot series
(`api/metrics.py`), so one scrape target sees all of a machine's traffic. Counts start
at zero with each worker process (a Prometheus counter reset). Stdlib only: the worker
imports it at start.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Buckets:
    """A histogram: how many observations fell at or below each bound, plus sum and count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.bounds):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        """`buckets`: [[bound, cumulative count], ...]; observations past the last bound
        are in `count` only (Prometheus's +Inf bucket)."""
        cumulative, total = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            total += n
            cumulative.append([bound, total])
        return {"buckets": cumulative, "sum": round(self.sum, 6), "count": self.count}


class Traffic:
    """What one worker answered: requests by route and status, TTFT and duration (its
    tokens are the engine's counters, beside this in the stats)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.ttft = Buckets(TTFT_BUCKETS)
        self.duration = Buckets(LATENCY_BUCKETS)

    def observe(self, route: str, status: int, *, ttft: float | None, seconds: float) -> None:
        self.requests[route, status] += 1
        if ttft is not None:
            self.ttft.observe(ttft)
        self.duration.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": [
                {"route": route, "status": status, "count": n}
                for (route, status), n in sorted(self.requests.items())
            ],
            "ttft_seconds": self.ttft.snapshot(),
            "duration_seconds": self.duration.snapshot(),
        }


def request_line(
    *,
    request_id: str | None,
    method: str | None,
    path: str,
    model: str | None,
    status: int,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    ttft: float | None,
    seconds: float,
    error: str | None = None,
) -> dict[str, Any]:
    """One access-log line: the same keys in the daemon's log and in a worker's."""
    line: dict[str, Any] = {
        "event": "request",
        "id": request_id,
        "method": method,
        "path": path,
        "model": model,
        "status": status,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "ttft_ms": None if ttft is None else round(ttft * 1000, 1),
        "duration_ms": round(seconds * 1000, 1),
    }
    if error:
        line["error"] = error
    return line
