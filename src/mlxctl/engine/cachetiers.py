"""How the mlx-lm engine's KV is kept beyond the in-memory prompt cache.

`CacheOptions` are a worker's KV settings (docs/performance.md, docs/settings.md):
quantized KV (`kv_bits`, `kv_group_size`), the prompt cache on disk (folder, byte
bound, shortest prompt worth a file) and the checkpoint spacing for models whose cache
cannot be trimmed. `CacheTiers` applies them on the generation thread: the fresh
cache a sequence starts from, a longer prefix from disk than memory had, the
checkpoint positions of a prompt, and which kept caches go to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxctl.engine import checkpoints, kvquant, mlxlm
from mlxctl.engine.diskcache import DiskCache, model_identity
from mlxctl.engine.prompt_cache import CacheHit
from mlxctl.errors import InvalidInput

__all__ = ["CacheOptions", "CacheTiers"]


@dataclass(frozen=True)
class CacheOptions:
    kv_bits: int | None = None  # 4 or 8: quantized KV; None: the model's dtype
    kv_group_size: int = 64
    disk_dir: Path | None = None  # the prompt cache's root on disk; None: off
    disk_bytes: int = 0
    disk_min_tokens: int = 256  # shorter prompts are cheaper to prefill than to read
    checkpoint_every: int = 1024  # tokens between checkpoints (hybrid, sliding window)

    def check(self) -> None:
        if self.kv_bits is not None and self.kv_bits not in kvquant.BITS:
            raise InvalidInput(f"kv_bits must be one of {kvquant.BITS}, not {self.kv_bits}")
        if self.kv_group_size not in kvquant.GROUP_SIZES:
            raise InvalidInput(
                f"kv_group_size must be one of {kvquant.GROUP_SIZES}, not {self.kv_group_size}"
            )
        if self.disk_bytes < 0 or self.disk_min_tokens < 0:
            raise InvalidInput("the disk cache's bytes and min tokens must be >= 0")

    @property
    def kv(self) -> tuple[int, int] | None:
        return (self.kv_bits, self.kv_group_size) if self.kv_bits else None


class CacheTiers:
    """Quantized KV, checkpoints and the disk tier for one loaded model (generation thread)."""

    def __init__(
        self, options: CacheOptions, model: Any, model_path: Path, adapter: Path | None
    ) -> None:
        options.check()
        self.options = options
        self.model = model
        self.checkpointing = checkpoints.needs_checkpoints(mlxlm.make_prompt_cache(model))
        if options.kv_bits:
            _check_quantizable(model, options.kv_bits, options.kv_group_size)
        self.disk: DiskCache | None = None
        if options.disk_dir is not None and options.disk_bytes > 0:
            identity = model_identity(model_path, adapter=adapter, kv=options.kv)
            self.disk = DiskCache(
                options.disk_dir,
                identity,
                max_bytes=options.disk_bytes,
                min_tokens=options.disk_min_tokens,
            )

    def fresh(self) -> list[Any] | None:
        """The cache a sequence with no reused prefix starts from (None: mlx-lm's own)."""
        if not self.options.kv_bits:
            return None
        cache = mlxlm.make_prompt_cache(self.model)
        return kvquant.quantize_cache(cache, self.options.kv_bits, self.options.kv_group_size)

    def better(self, prompt: list[int], hit: CacheHit) -> CacheHit:
        """`hit`, or a longer prefix of `prompt` read back from disk."""
        if self.disk is None:
            return hit
        found = self.disk.fetch(prompt, better_than=hit.tokens)
        return found if found is not None else hit

    def peek(self, prompt: list[int]) -> int:
        return self.disk.peek(prompt) if self.disk is not None else 0

    def checkpoints(self, prompt: list[int], cached: int) -> list[int] | None:
        """Positions (absolute) to checkpoint `prompt` at; None: this model needs none."""
        if not self.checkpointing:
            return None
        return checkpoints.positions(len(prompt), cached, self.options.checkpoint_every)

    def kept(self, tokens: list[int], cache: list[Any]) -> None:
        """A cache the memory tier just kept: write it to disk too (off this thread)."""
        if self.disk is not None:
            self.disk.offer(tokens, cache)

    def stats(self) -> dict[str, int]:
        if self.disk is None:
            return {}
        return {f"disk_{k}": v for k, v in self.disk.stats().items()}

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()


def _check_quantizable(model: Any, bits: int, group_size: int) -> None:
    """Run one token through a quantized cache, so a bad group size fails the load."""
    cache = kvquant.quantize_cache(mlxlm.make_prompt_cache(model), bits, group_size)
    try:
        mx.eval(model(mx.array([[0]]), cache=cache))
    except ValueError as exc:
        raise InvalidInput(
            f"kv_group_size {group_size} does not fit this model's attention heads: {exc}",
            hint="try a smaller kv_group_size (32), or serve it without kv_bits",
        ) from exc
