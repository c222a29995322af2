"""What each model's worker runs with, decided in one place.

`ModelOptions` is everything a worker is sized by: batch, queue, prompt cache, context,
and the KV tokens per sequence the memory estimate reserves. `OptionsSource.for_model`
is the one place a model's options are computed. The scheduler's estimate and every
worker's argv (on-demand and slot alike) read it, so what is budgeted is what runs.
Today every model gets the settings' values; per-model values come in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    # Speculative decoding (docs/speculative.md): a draft model (a registered name or a
    # folder), prompt lookup, and tokens drafted per step; `draft_bytes` is the draft's
    # share of the estimate (`with_draft` fills it from the draft's record).
    draft_model: str | None = None
    draft_bytes: int = 0
    prompt_lookup: bool = False
    num_draft_tokens: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelOptions:
        return cls(
            max_batch=settings.worker_max_batch,
            max_queue=settings.worker_max_queue,
            prompt_cache_entries=settings.worker_prompt_cache_entries,
            prompt_cache_bytes=settings.worker_prompt_cache_bytes,
            context=settings.worker_context or None,
            kv_context=settings.kv_context,
            prompt_lookup=settings.worker_prompt_lookup,
            num_draft_tokens=settings.worker_num_draft_tokens,
        )

    def with_draft(self, draft: ModelRecord) -> ModelOptions:
        """These options with `draft` as the draft model, its weights and one sequence's KV
        counted: the draft decodes only while a request runs alone."""
        kv = (draft.kv_bytes_per_token or 0) * min(self.kv_context, draft.context_length or 1 << 30)
        return replace(self, draft_model=draft.slug, draft_bytes=(draft.size_bytes or 0) + kv)

    def worker_argv(self) -> list[str]:
        """The `mlxctl worker` flags that carry these options."""
        argv = [
            *("--max-batch", str(self.max_batch), "--max-queue", str(self.max_queue)),
            *("--prompt-cache-entries", str(self.prompt_cache_entries)),
            *("--prompt-cache-bytes", self.prompt_cache_bytes),
        ]
        if self.context:
            argv += ["--context", str(self.context)]
        if self.draft_model:
            argv += ["--draft-model", self.draft_model]
        if self.prompt_lookup:
            argv += ["--prompt-lookup"]
        if self.draft_model or self.prompt_lookup:
            argv += ["--num-draft-tokens", str(self.num_draft_tokens)]
        return argv


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
