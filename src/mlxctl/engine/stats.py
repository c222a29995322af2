"""The engine's counters, written by the generation thread and read by anyone.

The generation thread owns every MLX call, memory getters included: it publishes
a memory reading and the prompt-cache figures here, and `snapshot()` only copies
plain numbers under a lock.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["EngineStats"]

# Weight of the newest request in the moving average of request durations.
_EMA_WEIGHT = 0.2


class EngineStats:
    """Thread-safe counters; `admit`/`release` bound how many requests are in flight."""

    def __init__(self, *, max_batch: int, max_queue: int) -> None:
        self._lock = threading.Lock()
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.in_flight = 0  # admitted and not yet finished: batch + queue
        self.active = 0  # sequences inside the batch
        self.batch_peak = 0
        self.requests_total = 0
        self.tokens_prompt_total = 0
        self.tokens_cached_total = 0
        self.tokens_generated_total = 0
        self.tokens_drafted_total = 0  # speculative decoding: draft tokens checked
        self.tokens_draft_accepted_total = 0  # ... and kept
        self.cancelled_total = 0
        self.errors_total = 0
        self.embed_requests_total = 0
        self.embed_inputs_total = 0
        self.request_seconds = 0.0  # moving average, for Retry-After
        self.prompt_cache: dict[str, int] = {}
        self.memory: dict[str, int] = {"active": 0, "peak": 0, "cache": 0}

    def admit(self) -> bool:
        """Count one more request in flight, unless batch and queue are full."""
        with self._lock:
            if self.in_flight >= self.max_batch + self.max_queue:
                return False
            self.in_flight += 1
            self.requests_total += 1
            return True

    def release(self, *, seconds: float | None = None, cancelled: bool = False) -> None:
        """A request left the engine (finished, failed or cancelled)."""
        with self._lock:
            self.in_flight -= 1
            if cancelled:
                self.cancelled_total += 1
            if seconds is not None:
                self.request_seconds += _EMA_WEIGHT * (seconds - self.request_seconds)

    def retry_after(self) -> float:
        """Seconds a refused client should wait: about one request's duration, 1..60."""
        with self._lock:
            waves = 1 + (self.in_flight - self.max_batch) / max(1, self.max_batch)
            return min(60.0, max(1.0, self.request_seconds * waves))

    def set_active(self, active: int) -> None:
        with self._lock:
            self.active = active
            self.batch_peak = max(self.batch_peak, active)

    def add_tokens(self, *, prompt: int = 0, cached: int = 0, generated: int = 0) -> None:
        with self._lock:
            self.tokens_prompt_total += prompt
            self.tokens_cached_total += cached
            self.tokens_generated_total += generated

    def add_speculation(self, *, drafted: int, accepted: int) -> None:
        with self._lock:
            self.tokens_drafted_total += drafted
            self.tokens_draft_accepted_total += accepted

    def add_embedding(self, *, inputs: int, tokens: int) -> None:
        """One embedding request served: its inputs, and their tokens as prompt tokens."""
        with self._lock:
            self.embed_requests_total += 1
            self.embed_inputs_total += inputs
            self.tokens_prompt_total += tokens

    def add_error(self) -> None:
        with self._lock:
            self.errors_total += 1

    def publish(self, *, memory: dict[str, int], prompt_cache: dict[str, int]) -> None:
        """Called by the generation thread with fresh readings."""
        with self._lock:
            self.memory = memory
            self.prompt_cache = prompt_cache

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queue_depth": max(0, self.in_flight - self.active),
                "active": self.active,
                "batch_peak": self.batch_peak,
                "max_batch": self.max_batch,
                "max_queue": self.max_queue,
                "requests_total": self.requests_total,
                "tokens_prompt_total": self.tokens_prompt_total,
                "tokens_cached_total": self.tokens_cached_total,
                "tokens_generated_total": self.tokens_generated_total,
                "tokens_drafted_total": self.tokens_drafted_total,
                "tokens_draft_accepted_total": self.tokens_draft_accepted_total,
                "cancelled_total": self.cancelled_total,
                "errors_total": self.errors_total,
                "embed_requests_total": self.embed_requests_total,
                "embed_inputs_total": self.embed_inputs_total,
                "prompt_cache": dict(self.prompt_cache),
                "memory": dict(self.memory),
            }
