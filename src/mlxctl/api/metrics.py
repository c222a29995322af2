"""`GET /metrics`: Prometheus text for requests, tokens, latency, memory and the scheduler.

Request counters and histograms are observed by the access middleware. The rest
is read at scrape time: the scheduler's snapshot (loaded models, estimates,
loads, evictions, crashes) and each ready worker's `/v1/worker/stats` (tokens,
queue depth, MLX memory, prompt-cache hits). Worker counters restart with their
worker, so each model's totals add up the workers it has had. A slot's worker also
gets series of its own (`slot_metrics.py`), with the traffic sent straight to its port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlxctl.api.slot_metrics import number, slot_families
from mlxctl.router import Exchange
from mlxctl.scheduler import Scheduler, SchedulerStatus
from mlxctl.supervision import memory
from mlxctl.traffic import LATENCY_BUCKETS, TTFT_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Worker stats counters summed across a model's workers: (stats path, metric suffix, help).
_WORKER_COUNTERS = (
    (("tokens_prompt_total",), "prompt_tokens", "Prompt tokens the workers processed"),
    (("tokens_generated_total",), "generated_tokens", "Tokens the workers generated"),
    (("tokens_cached_total",), "cached_prompt_tokens", "Prompt tokens served from the cache"),
    (("tokens_drafted_total",), "draft_tokens", "Speculative draft tokens the model checked"),
    (("tokens_draft_accepted_total",), "draft_accepted_tokens", "Draft tokens the model kept"),
    (("prompt_cache", "hits"), "prompt_cache_hits", "Prompt-cache lookups that hit"),
    (("prompt_cache", "misses"), "prompt_cache_misses", "Prompt-cache lookups that missed"),
    (("cancelled_total",), "cancelled_requests", "Generations cancelled (client gone)"),
)


def routes() -> list[Route]:
    return [Route("/metrics", metrics_endpoint, methods=["GET"])]


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    await metrics.refresh(request.app.state.scheduler, request.app.state.http)
    return Response(metrics.render(), media_type=CONTENT_TYPE)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlxctl_requests",
            "HTTP requests answered, by route, model and status",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mlxctl_request_errors",
            "Requests that failed (status >= 400, or an error after the first byte)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "mlxctl_time_to_first_token_seconds",
            "Time from request to the first body byte from the worker",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlxctl_request_duration_seconds",
            "Time from request to the last byte",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.live = LiveCollector()
        self.registry.register(self.live)

    def observe(self, route: str, status: int, exchange: Exchange, seconds: float) -> None:
        model = exchange.model or ""
        self.requests.labels(route, model, str(status)).inc()
        self.latency.labels(route, model).observe(seconds)
        if exchange.ttft is not None and model:
            self.ttft.labels(model).observe(exchange.ttft)
        if status >= 400 or exchange.error in ("worker_lost", "worker_timeout"):
            self.errors.labels(model, exchange.error or str(status)).inc()

    async def refresh(self, scheduler: Scheduler, http: httpx.AsyncClient) -> None:
        snapshot = await scheduler.status()
        ready = [m for m in snapshot.models if m.state == "ready" and m.worker is not None]

        async def stats(row: Any) -> tuple[str, int | None, dict[str, Any] | None]:
            worker = row.worker
            stats = await memory.fetch_stats(http, worker.base_url, headers=worker.headers)
            return row.model, row.worker_id, stats

        results = await asyncio.gather(*(stats(row) for row in ready))
        self.live.update(snapshot, results)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LiveCollector(Collector):
    """Scheduler and worker figures as of the last refresh."""

    def __init__(self) -> None:
        self.snapshot: SchedulerStatus | None = None
        self.stats: dict[str, dict[str, Any]] = {}
        self._base: dict[tuple[str, str], float] = {}  # totals of a model's earlier workers
        self._last: dict[str, tuple[int | None, dict[str, float]]] = {}

    def update(
        self,
        snapshot: SchedulerStatus,
        results: list[tuple[str, int | None, dict[str, Any] | None]],
    ) -> None:
        self.snapshot = snapshot
        self.stats = {}
        for model, worker_id, stats in results:
            if stats is None:
                continue
            self.stats[model] = stats
            values = {name: number(stats, path) for path, name, _ in _WORKER_COUNTERS}
            previous = self._last.get(model)
            if previous is not None and previous[0] != worker_id:
                for name, value in previous[1].items():
                    self._base[model, name] = self._base.get((model, name), 0.0) + value
            self._last[model] = (worker_id, values)

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap is None:
            return
        yield _gauge("mlxctl_memory_budget_bytes", "Memory budget for loaded models", snap.budget)
        yield _gauge("mlxctl_memory_used_bytes", "Estimated memory of loaded models", snap.used)
        loaded = [m for m in snap.models if m.state != "queued"]
        yield _gauge("mlxctl_loaded_models", "Models with a worker (any state)", len(loaded))
        state = GaugeMetricFamily(
            "mlxctl_model_state", "1 for the model's state", labels=["model", "state"]
        )
        in_flight = GaugeMetricFamily(
            "mlxctl_model_in_flight", "Requests in flight", labels=["model"]
        )
        queue = GaugeMetricFamily(
            "mlxctl_queue_depth",
            "Requests waiting: for a load (daemon) or a batch slot (worker)",
            labels=["model", "where"],
        )
        mem = GaugeMetricFamily(
            "mlxctl_model_memory_bytes",
            "Memory per model: estimate and measured",
            labels=["model", "kind"],
        )
        for m in snap.models:
            state.add_metric([m.model, m.state], 1)
            in_flight.add_metric([m.model], m.in_flight)
            queue.add_metric([m.model, "daemon"], m.waiting)
            mem.add_metric([m.model, "estimated"], m.estimate)
            stats = self.stats.get(m.model)
            if stats is not None:
                queue.add_metric([m.model, "worker"], number(stats, ("queue_depth",)))
                for key in ("active", "cache", "peak"):
                    mem.add_metric([m.model, f"mlx_{key}"], number(stats, ("memory", key)))
            if m.worker is not None and m.state == "ready":
                rss = memory.rss(m.worker.pid)
                if rss is not None:
                    mem.add_metric([m.model, "rss"], rss)
        yield from (state, in_flight, queue, mem)
        yield from self._scheduler_counters(snap)
        yield from self._worker_counters()
        yield from slot_families(snap.models, self.stats)

    def _scheduler_counters(self, snap: SchedulerStatus) -> Iterator[Metric]:
        counters = snap.counters
        loads = CounterMetricFamily(
            "mlxctl_model_loads", "Worker loads", labels=["model", "result"]
        )
        for (model, result), n in sorted(counters.loads.items()):
            loads.add_metric([model, result], n)
        evictions = CounterMetricFamily(
            "mlxctl_model_unloads",
            "Workers stopped, by reason (evicted, expired, ...)",
            labels=["model", "reason"],
        )
        for (model, reason), n in sorted(counters.evictions.items()):
            evictions.add_metric([model, reason], n)
        crashes = CounterMetricFamily(
            "mlxctl_worker_crashes", "Workers that died", labels=["model"]
        )
        for model, n in sorted(counters.crashes.items()):
            crashes.add_metric([model], n)
        seconds = GaugeMetricFamily(
            "mlxctl_model_load_seconds", "Duration of the model's latest load", labels=["model"]
        )
        for model, value in sorted(counters.load_seconds.items()):
            seconds.add_metric([model], value)
        yield from (loads, evictions, crashes, seconds)

    def _worker_counters(self) -> Iterator[Metric]:
        for _, name, help_text in _WORKER_COUNTERS:
            family = CounterMetricFamily(f"mlxctl_{name}", help_text, labels=["model"])
            models = {m for m, _ in self._base} | set(self._last)
            for model in sorted(models):
                last = self._last.get(model, (None, {}))[1].get(name, 0.0)
                family.add_metric([model], self._base.get((model, name), 0.0) + last)
            yield family


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)
