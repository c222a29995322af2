"""What each model's worker runs with, decided in one place.

`ModelOptions` is everything a worker is sized by: batch, queue, prompt cache (memory
and disk), context, KV quantization and the KV tokens per sequence the memory estimate
reserves. `OptionsSource.for_model`
is the one place a model's options are computed. The scheduler's estimate and every
worker's argv (on-demand and slot alike) read it, so what is budgeted is what runs.
Today every model gets the settings' values; per-model values come in here.
"""

from __future__ import annotations

import math
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
    kv_bits: int | None = None  # 4 or 8: quantized KV cache; None: the model's dtype
    kv_group_size: int = 64
    disk_cache_bytes: str = "4GiB"  # the prompt cache on disk; "0": off

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelOptions:
        return cls(
            max_batch=settings.worker_max_batch,
            max_queue=settings.worker_max_queue,
            prompt_cache_entries=settings.worker_prompt_cache_entries,
            prompt_cache_bytes=settings.worker_prompt_cache_bytes,
            context=settings.worker_context or None,
            kv_context=settings.kv_context,
            kv_bits=settings.worker_kv_bits or None,
            kv_group_size=settings.worker_kv_group_size,
            disk_cache_bytes=settings.worker_disk_cache_bytes,
        )

    def kv_bytes(self, per_token: int, dtype_bytes: int | None) -> int:
        """KV bytes per token as the worker keeps them: `per_token` (in the model's
        dtype) quantized to `kv_bits` with one scale and bias per group, when set."""
        if not self.kv_bits:
            return per_token
        width = dtype_bytes or 2
        return quantized_kv_bytes(per_token, width, self.kv_bits, self.kv_group_size)

    def worker_argv(self) -> list[str]:
        """The `mlxctl worker` flags that carry these options."""
        argv = [
            *("--max-batch", str(self.max_batch), "--max-queue", str(self.max_queue)),
            *("--prompt-cache-entries", str(self.prompt_cache_entries)),
            *("--prompt-cache-bytes", self.prompt_cache_bytes),
            *("--disk-cache-bytes", self.disk_cache_bytes),
        ]
        if self.kv_bits:
            argv += ["--kv-bits", str(self.kv_bits), "--kv-group-size", str(self.kv_group_size)]
        return [*argv, "--context", str(self.context)] if self.context else argv


def quantized_kv_bytes(fp_bytes: int, dtype_bytes: int, bits: int, group_size: int) -> int:
    """What `fp_bytes` of KV in a `dtype_bytes`-wide dtype take quantized: packed values
    plus one scale and one bias (in that dtype) per `group_size` elements."""
    elements = fp_bytes / dtype_bytes
    return math.ceil(elements * bits / 8 + elements / group_size * 2 * dtype_bytes)


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
