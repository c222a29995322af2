"""The scheduler's limits, read once from the settings (a model's own batch and context
are its `ModelOptions`, from `model_options.OptionsSource`)."""

from __future__ import annotations

from dataclasses import dataclass

from mlxctl.scheduler.budget import parse_budget, physical_memory
from mlxctl.scheduler.keepalive import parse_keep_alive
from mlxctl.settings import Settings
from mlxctl.units import human_bytes


@dataclass(frozen=True)
class SchedulerConfig:
    budget: int
    budget_text: str = ""  # as configured, for messages ("75% of 24.0 GB")
    max_loaded: int = 3
    keep_alive: float | None = 300.0  # seconds; None = until evicted
    max_queue: int = 64
    queue_timeout: float = 120.0
    load_timeout: float = 300.0
    cooldown: float = 10.0
    stop_grace: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, total_memory: int | None = None) -> SchedulerConfig:
        total = physical_memory() if total_memory is None else total_memory
        budget = parse_budget(settings.memory_budget, total)
        text = settings.memory_budget.strip()
        if text.endswith("%"):
            text = f"{text} of {human_bytes(total)}"
        return cls(
            budget=budget,
            budget_text=f"MLXCTL_MEMORY_BUDGET={text}",
            max_loaded=settings.max_loaded_models,
            keep_alive=parse_keep_alive(settings.keep_alive, param="MLXCTL_KEEP_ALIVE"),
            max_queue=settings.max_queue,
            queue_timeout=settings.queue_timeout,
            load_timeout=settings.load_timeout,
            cooldown=settings.load_cooldown,
            stop_grace=settings.worker_stop_grace,
        )
