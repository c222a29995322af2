"""What each model's worker runs with, decided in one place.

`ModelOptions` is everything a worker is sized by: batch, queue, prompt cache, context,
and the KV tokens per sequence the memory estimate reserves. `OptionsSource.for_model`
is the one place a model's options are computed. The scheduler's estimate and every
worker's argv (on-demand and slot alike) read it, so what is budgeted is what runs.
Today every model gets the settings' values; per-model values come in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlxctl.registry import ModelRecord
from mlxctl.settings import Settings


@dataclass(frozen=True)
class ModelOptions:
    max_batch: int = 8
    max_queue: int = 64
    prompt_cache_entries: int = 16
    prompt_cache_bytes: str = "2GiB"
    context: int | None = None  # the worker's context window; None: the model's own
    kv_context: int = 4096  # KV tokens per sequence the memory estimate reserves

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelOptions:
        return cls(
            max_batch=settings.worker_max_batch,
            max_queue=settings.worker_max_queue,
            prompt_cache_entries=settings.worker_prompt_cache_entries,
            prompt_cache_bytes=settings.worker_prompt_cache_bytes,
            context=settings.worker_context or None,
            kv_context=settings.kv_context,
        )

    def worker_argv(self) -> list[str]:
        """The `mlxctl worker` flags that carry these options."""
        argv = [
            *("--max-batch", str(self.max_batch), "--max-queue", str(self.max_queue)),
            *("--prompt-cache-entries", str(self.prompt_cache_entries)),
            *("--prompt-cache-bytes", self.prompt_cache_bytes),
        ]
        return [*argv, "--context", str(self.context)] if self.context else argv


@dataclass(frozen=True)
class OptionsSource:
    """Where a model's options come from: the settings' values for every model today."""

    defaults: ModelOptions = field(default_factory=ModelOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> OptionsSource:
        return cls(ModelOptions.from_settings(settings))

    def for_model(self, record: ModelRecord) -> ModelOptions:
        """The options `record`'s worker runs with and its estimate assumes."""
        return self.defaults
