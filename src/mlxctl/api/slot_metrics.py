"""Per-slot series for `/metrics`, from each slot worker's `/v1/worker/stats`.

A slot's worker answers gateways on its own port as well as the daemon, so its own
counts (`mlxctl.traffic`) are the ones that see everything. At scrape time the daemon
turns them into series labelled `slot` (the port), `alias` and `model`; a Prometheus
user scrapes the daemon alone. The daemon's `mlxctl_requests` still counts what came
through the daemon, so `mlxctl_slot_requests` minus it is the direct traffic.

    mlxctl_slot_up                               1 when the worker answered this scrape
    mlxctl_slot_requests_total                   by route and status
    mlxctl_slot_time_to_first_token_seconds      histogram (first body byte)
    mlxctl_slot_request_duration_seconds         histogram
    mlxctl_slot_prompt_tokens_total, mlxctl_slot_generated_tokens_total
    mlxctl_slot_queue_depth, mlxctl_slot_in_flight

Counters restart with the worker process (a Prometheus counter reset).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from mlxctl.scheduler import ModelStatus

_LABELS = ["slot", "alias", "model"]


def slot_families(
    models: Iterable[ModelStatus], stats: Mapping[str, dict[str, Any]]
) -> Iterator[Metric]:
    """The slot series of the ready slot workers among `models` (`stats` by model)."""
    up = GaugeMetricFamily("mlxctl_slot_up", "1 when the slot's worker answered", labels=_LABELS)
    requests = CounterMetricFamily(
        "mlxctl_slot_requests",
        "Requests the slot's worker answered, through the daemon or straight to its port",
        labels=[*_LABELS, "route", "status"],
    )
    ttft = HistogramMetricFamily(
        "mlxctl_slot_time_to_first_token_seconds",
        "Slot worker: time from request to the first body byte",
        labels=_LABELS,
    )
    duration = HistogramMetricFamily(
        "mlxctl_slot_request_duration_seconds",
        "Slot worker: time from request to the last byte",
        labels=_LABELS,
    )
    prompt = CounterMetricFamily(
        "mlxctl_slot_prompt_tokens", "Prompt tokens the slot's worker processed", labels=_LABELS
    )
    generated = CounterMetricFamily(
        "mlxctl_slot_generated_tokens", "Tokens the slot's worker generated", labels=_LABELS
    )
    queue = GaugeMetricFamily(
        "mlxctl_slot_queue_depth",
        "Requests waiting for a batch place in the slot's worker",
        labels=_LABELS,
    )
    in_flight = GaugeMetricFamily(
        "mlxctl_slot_in_flight", "Requests the slot's worker is answering", labels=_LABELS
    )
    for row in models:
        if row.slot is None or row.state != "ready":
            continue
        key = [str(row.slot.port), row.slot.alias, row.model]
        found = stats.get(row.model)
        up.add_metric(key, 0 if found is None else 1)
        if found is None:
            continue
        traffic = found.get("traffic")
        traffic = traffic if isinstance(traffic, dict) else {}
        for counted in _list(traffic.get("requests")):
            route, status = counted.get("route"), counted.get("status")
            if isinstance(route, str) and isinstance(status, int):
                requests.add_metric([*key, route, str(status)], number(counted, ("count",)))
        for family, name in ((ttft, "ttft_seconds"), (duration, "duration_seconds")):
            histogram = traffic.get(name)
            if isinstance(histogram, dict):
                family.add_metric(key, _buckets(histogram), number(histogram, ("sum",)))
        prompt.add_metric(key, number(found, ("tokens_prompt_total",)))
        generated.add_metric(key, number(found, ("tokens_generated_total",)))
        queue.add_metric(key, number(found, ("queue_depth",)))
        in_flight.add_metric(key, number(found, ("http", "requests_active")))
    yield from (up, requests, ttft, duration, prompt, generated, queue, in_flight)


def number(data: Mapping[str, Any], path: tuple[str, ...]) -> float:
    """The number at `path` in a worker's JSON, 0 when absent or not a number."""
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _buckets(histogram: dict[str, Any]) -> list[tuple[str, float]]:
    """Cumulative `[bound, count]` pairs plus Prometheus's +Inf (the total count)."""
    pairs = []
    for pair in histogram.get("buckets") or []:
        if isinstance(pair, list) and len(pair) == 2:
            bound, count = pair
            if isinstance(bound, int | float) and isinstance(count, int | float):
                pairs.append((floatToGoString(bound), float(count)))  # type: ignore[no-untyped-call]
    return [*pairs, ("+Inf", number(histogram, ("count",)))]
