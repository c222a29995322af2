"""What each model's worker runs with, decided in one place.

`ModelOptions` is everything a worker is sized by: batch, queue, prompt cache (memory
and disk), context, KV quantization and the KV tokens per sequence the memory estimate
reserves, plus the per-model settings of `config.yaml` (docs/config.md).
`OptionsSource.for_model` is the one place a model's options are computed. The
scheduler's estimate and every worker's argv (on-demand and slot alike) read it, so what
is budgeted is what runs. Without a config file every model gets the settings' values;
with one, its `models:` sections and presets come in here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from mlxctl.errors import MlxctlError
from mlxctl.registry import ModelRecord
from mlxctl.registry.resolve import resolve_reference
from mlxctl.settings import Settings
from mlxctl.sharding.spec import ShardSettings


def _load_time(default: Any) -> Any:
    # A field the worker is started with: changing it means a new worker.
    return field(default=default, metadata={"load_time": True})


@dataclass(frozen=True)
class ModelOptions:
    max_batch: int = _load_time(8)
    max_queue: int = _load_time(64)
    prompt_cache_entries: int = _load_time(16)
    prompt_cache_bytes: str = _load_time("2GiB")
    context: int | None = _load_time(None)  # the worker's context window; None: the model's own
    kv_context: int = _load_time(4096)  # KV tokens per sequence the memory estimate reserves
    kv_bits: int | None = _load_time(None)  # 4 or 8: quantized KV cache; None: the model's dtype
    kv_group_size: int = _load_time(64)
    disk_cache_bytes: str = _load_time("4GiB")  # the prompt cache on disk; "0": off
    # Speculative decoding (docs/speculative.md): a draft model (a registered name or a
    # folder), prompt lookup, and tokens drafted per step; `draft_bytes` is the draft's
    # share of the estimate (`with_draft` fills it from the draft's record).
    draft_model: str | None = _load_time(None)
    draft_bytes: int = 0
    prompt_lookup: bool = _load_time(False)
    num_draft_tokens: int = _load_time(3)
    chat_template: str | None = _load_time(None)  # a template file, over the registry's
    tool_call_parser: str | None = _load_time(None)
    reasoning_parser: str | None = _load_time(None)
    # Run across ranks/hosts by mlx.launch + mlx_lm.server (sharding/, docs/scale-out.md).
    shard: ShardSettings | None = field(default=None, metadata={"load_time": True})
    # Applied by the daemon at once, no new worker needed.
    keep_alive: str | None = None  # None: the daemon's MLXCTL_KEEP_ALIVE
    pinned: bool = False  # never evicted, never expires
    preload: bool = False  # loaded when the daemon starts
    sampling: tuple[tuple[str, Any], ...] = ()  # request defaults: (field, value) pairs
    preset: str | None = None  # the preset these options came from, for ps/show/audit

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
            prompt_lookup=settings.worker_prompt_lookup,
            num_draft_tokens=settings.worker_num_draft_tokens,
        )

    def with_draft(self, draft: ModelRecord) -> ModelOptions:
        """These options with `draft` as the draft model, its weights and one sequence's KV
        counted: the draft decodes only while a request runs alone."""
        kv = (draft.kv_bytes_per_token or 0) * min(self.kv_context, draft.context_length or 1 << 30)
        return replace(self, draft_model=draft.slug, draft_bytes=(draft.size_bytes or 0) + kv)

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
        flags = {
            "--context": self.context,
            "--chat-template": self.chat_template,
            "--tool-call-parser": self.tool_call_parser,
            "--reasoning-parser": self.reasoning_parser,
            "--preset": self.preset,
        }
        if self.kv_bits:
            flags |= {"--kv-bits": self.kv_bits, "--kv-group-size": self.kv_group_size}
        if self.draft_model:
            flags["--draft-model"] = self.draft_model
        if self.draft_model or self.prompt_lookup:
            flags["--num-draft-tokens"] = self.num_draft_tokens
        for flag, value in flags.items():
            if value:
                argv += [flag, str(value)]
        return [*argv, "--prompt-lookup"] if self.prompt_lookup else argv

    def load_time(self) -> dict[str, Any]:
        """The fields a running worker was started with (a change needs a new worker)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("load_time")}

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, for `ps`, `show` and `config show`."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sampling"] = dict(self.sampling)
        data["shard"] = self.shard.model_dump() if self.shard is not None else None
        return data


def quantized_kv_bytes(fp_bytes: int, dtype_bytes: int, bits: int, group_size: int) -> int:
    """What `fp_bytes` of KV in a `dtype_bytes`-wide dtype take quantized: packed values
    plus one scale and one bias (in that dtype) per `group_size` elements."""
    elements = fp_bytes / dtype_bytes
    return math.ceil(elements * bits / 8 + elements / group_size * 2 * dtype_bytes)


class Layers(Protocol):
    """A config file's per-model layers (`config.schema.ConfigFile`)."""

    def options_for(
        self, record: ModelRecord, defaults: ModelOptions, load_preset: str | None = None
    ) -> ModelOptions: ...


class Records(Protocol):
    """The registered models (`registry.Registry`): where a draft model's size is read."""

    def list(self) -> list[ModelRecord]: ...


@dataclass
class OptionsSource:
    """Where a model's options come from: the settings' values, then the config file's
    preset and model section, then a preset named at load (`mlxctl load --preset`);
    a draft model named there is counted from its registry record (`with_draft`).

    Swapped whole on a config reload (`use`): it runs on the daemon's event loop only.
    """

    defaults: ModelOptions = field(default_factory=ModelOptions)
    config: Layers | None = None
    load_presets: dict[str, str] = field(default_factory=dict)  # slug → preset at load
    load_shards: dict[str, ShardSettings] = field(default_factory=dict)  # slug → `load --hosts`
    records: Records | None = None  # None: a draft model is not counted (no registry)

    @classmethod
    def from_settings(
        cls, settings: Settings, config: Layers | None = None, records: Records | None = None
    ) -> OptionsSource:
        return cls(ModelOptions.from_settings(settings), config, records=records)

    def use(self, defaults: ModelOptions, config: Layers | None) -> None:
        """Take a reloaded config (the caller restarts workers whose options changed)."""
        self.defaults, self.config = defaults, config

    def for_model(self, record: ModelRecord) -> ModelOptions:
        """The options `record`'s worker runs with and its estimate assumes."""
        options = self.defaults
        if self.config is not None:
            preset = self.load_presets.get(record.slug)
            options = self.config.options_for(record, self.defaults, preset)
        shard = self.load_shards.get(record.slug)
        if shard is not None:
            options = replace(options, shard=shard)
        if options.draft_model is None or self.records is None:
            return options
        try:
            draft = resolve_reference(options.draft_model, self.records.list())
        except MlxctlError:
            return options  # not registered (`mlxctl verify` says so): the worker refuses it
        return options.with_draft(draft)
