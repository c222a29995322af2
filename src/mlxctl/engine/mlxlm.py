"""The one door to mlx-lm.

mlx-lm moves fast and many useful pieces are internal (`_get_classes`, the
tokenizer wrapper, the batch generator). Everything mlxctl uses from it is
imported here, so an mlx-lm upgrade touches this module only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import mlx.core as mx
from mlx.nn.layers.base import Module
from mlx_lm import utils as _utils
from mlx_lm.generate import BatchGenerator, StopSequences, stream_generate
from mlx_lm.models.cache import (
    ArraysCache,
    BatchKVCache,
    KVCache,
    LRUPromptCache,
    QuantizedKVCache,
    RotatingKVCache,
    can_trim_prompt_cache,
    dynamic_roll,
    make_prompt_cache,
    trim_prompt_cache,
)
from mlx_lm.sample_utils import (
    apply_min_p,
    apply_top_k,
    apply_top_p,
    greedy_sampler,
    make_logits_processors,
)
from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, TokenizerWrapper

__all__ = [
    "TokenizerWrapper",
    "load",
    "model_classes",
    "quantize_model",
    "save_config",
    "save_weights",
    "stream_generate",
    "total_parameters",
]


def model_classes(config: dict[str, Any]) -> tuple[type[Any], type[Any]]:
    """(Model, ModelArgs) classes for a config's `model_type`."""
    model_cls, args_cls = _utils._get_classes(config)
    return model_cls, args_cls


def load(
    path: str | Path, *, adapter_path: str | Path | None = None, **kwargs: Any
) -> tuple[Module, TokenizerWrapper]:
    """Model and tokenizer of a folder; `adapter_path` applies a LoRA adapter folder."""
    if adapter_path is not None:
        kwargs["adapter_path"] = str(adapter_path)
    model, tokenizer = _utils.load(str(path), **kwargs)[:2]
    return model, tokenizer


def save_weights(path: Path, model: Module) -> None:
    _utils.save_model(path, model)


def save_config(config: dict[str, Any], path: Path) -> None:
    _utils.save_config(dict(config), config_path=path)


def quantize_model(
    model: Module, config: dict[str, Any], bits: int, group_size: int
) -> tuple[Module, dict[str, Any]]:
    quantized, new_config = _utils.quantize_model(model, dict(config), group_size, bits)
    return quantized, new_config


def total_parameters(model: Module) -> int:
    count: Callable[[Any], object] = _utils.get_total_parameters
    return int(str(count(model)))


# --- The engine's side: continuous batching, sampling, the prompt cache. ---

__all__ += [
    "ArraysCache",
    "Batch",
    "BatchKVCache",
    "BatchResponse",
    "KVCache",
    "LogitsProcessor",
    "PromptCacheStore",
    "QuantizedKVCache",
    "RotatingKVCache",
    "Sampler",
    "apply_min_p",
    "apply_top_k",
    "apply_top_p",
    "can_trim_prompt_cache",
    "dynamic_roll",
    "greedy_sampler",
    "make_logits_processors",
    "make_prompt_cache",
    "streaming_detokenizer",
    "trim_prompt_cache",
]

# mlx-lm's callables: a sampler maps (1, vocab) logprobs to (1,) token ids; a
# logits processor maps (tokens so far, (1, vocab) logits) to new logits.
Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


class BatchResponse(Protocol):
    """One token of one sequence from `Batch.step` (mlx-lm's GenerationBatch.Response)."""

    uid: int
    token: int
    logprobs: mx.array  # log-softmax over the vocabulary, already evaluated
    finish_reason: str | None  # "stop", "length" or None
    prompt_cache: list[Any] | None  # the sequence's KV cache, once finished
    all_tokens: list[int] | None  # the tokens that cache holds, once finished


class Batch:
    """A typed face on mlx-lm's `BatchGenerator` (continuous batching).

    Not thread-safe: create and use it on the generation thread only.
    """

    def __init__(self, model: Any, *, max_batch: int, prefill_step_size: int, stream: Any) -> None:
        # Typed Any: mlx-lm's methods carry no annotations.
        self._gen: Any = BatchGenerator(
            model,
            completion_batch_size=max_batch,
            prefill_batch_size=max_batch,
            prefill_step_size=prefill_step_size,
            stream=stream,
        )
        self._checkpointing: set[int] = set()  # uids that stop at checkpoints
        self.segment_ends: list[int] = []  # checkpointing uids at a checkpoint after `step`

    def insert(
        self,
        tokens: list[int],
        *,
        max_tokens: int,
        cache: list[Any] | None,
        cached_tokens: list[int],
        sampler: Sampler,
        processors: list[LogitsProcessor],
        stop: Sequence[Sequence[int]],
        checkpoints: Sequence[int] | None = None,
    ) -> int:
        """Queue one sequence; `tokens` follow the `cached_tokens` already in `cache`.

        With `checkpoints` (offsets into `tokens`; `[]` for none but the prompt's end),
        prefill stops at each, and `step` lists the sequence in `segment_ends` there.
        """
        cuts = [0, *(c for c in checkpoints or () if 0 < c < len(tokens)), len(tokens)]
        (uid,) = self._gen.insert_segments(
            [[tokens[a:b] for a, b in itertools.pairwise(cuts)]],
            max_tokens=[max_tokens],
            caches=[cache] if cache is not None else None,
            all_tokens=[cached_tokens],
            samplers=[sampler],
            logits_processors=[processors],
            stop_sequences=[StopSequences(stop)],
        )
        if checkpoints is not None:
            self._checkpointing.add(int(uid))
        return int(uid)

    def step(self) -> tuple[int, list[BatchResponse]]:
        """One scheduling step: (prompt chunks processed, tokens generated)."""
        prompt, generated = self._gen.next()
        self.segment_ends = [
            r.uid
            for r in prompt
            if r.end_of_segment and not r.end_of_prompt and r.uid in self._checkpointing
        ]
        self._checkpointing.difference_update(r.uid for r in generated if r.finish_reason)
        return len(prompt), generated

    def snapshot(self, uid: int) -> tuple[list[Any], list[int]] | None:
        """A copy of sequence `uid`'s cache as it stands, and the tokens it holds."""
        found = self._gen.extract_cache([uid]).get(uid)
        if found is None:
            return None
        cache, tokens = found
        return cache, list(tokens)

    def remove(self, uids: list[int]) -> None:
        self._gen.remove(uids)
        self._checkpointing.difference_update(uids)

    def borrow(self, uid: int, prefix: Sequence[int]) -> list[Any] | None:
        """A copy of decoding sequence `uid`'s KV cut to `prefix`, if it holds exactly that.

        Lets a new request start from the prompt a running one already prefilled.
        """
        where = self._gen._find_uids([uid]).get(uid)
        if where is None or where[0] == 0:
            return None  # not prefilled yet: extract_cache would hand out its live cache
        found = self._gen.extract_cache([uid]).get(uid)
        if found is None:
            return None
        cache, tokens = found
        held = int(cache[0].offset) if cache and hasattr(cache[0], "offset") else 0
        n = len(prefix)
        if n == 0 or held < n or list(tokens[:n]) != list(prefix):
            return None
        if held > n:
            if not can_trim_prompt_cache(cache):
                return None
            trim_prompt_cache(cache, held - n)
        copied: list[Any] = cache
        return copied

    def close(self) -> None:
        self._gen.close()


class PromptCacheStore:
    """mlx-lm's `LRUPromptCache` for one model, with recency refreshed on every hit.

    mlx-lm evicts in insertion order; `fetch` moves the entry it used to the back,
    which reaches into the cache's private trie and order (hence it lives here).
    """

    _MODEL = "model"  # one worker serves one model

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._lru: Any = LRUPromptCache(max_size=max_entries, max_bytes=max_bytes)

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def nbytes(self) -> int:
        return int(self._lru.nbytes)

    def fetch(self, tokens: list[int]) -> tuple[list[Any] | None, int]:
        """A private copy of the nearest cache for `tokens` and how many leading tokens it holds.

        At most `len(tokens) - 1`: the model must still run the last token.
        """
        found = self._lru._trie.search(self._MODEL, tokens)
        cache, rest = self._lru.fetch_nearest_cache(self._MODEL, tokens)
        if cache is None:
            return None, 0
        if not rest:
            # An exact hit: step back one token so there is something to feed.
            if not can_trim_prompt_cache(cache):
                return None, 0
            trim_prompt_cache(cache, 1)
            rest = tokens[-1:]
        self._touch(found, len(tokens) - len(rest))
        return cache, len(tokens) - len(rest)

    def peek(self, tokens: list[int]) -> int:
        """How many leading tokens `fetch` would serve, without copying anything."""
        found = self._lru._trie.search(self._MODEL, tokens)
        if found.exact is not None:
            return max(0, len(tokens) - 1)
        longer = found.common_prefix if found.longer is not None else 0
        return min(max(len(found.shorter or []), longer), max(0, len(tokens) - 1))

    def insert(self, tokens: list[int], cache: list[Any]) -> None:
        self._lru.insert_cache(self._MODEL, list(tokens), cache)

    def _touch(self, found: Any, reused: int) -> None:
        # Which entry fetch_nearest_cache copied: exact, a trimmed longer one, or a prefix.
        key = found.exact
        if key is None:
            shorter = found.shorter or []
            key = found.longer if reused > len(shorter) or not shorter else shorter
        entry = self._lru._trie.get(self._MODEL, key)
        self._lru._lru.remove(self._MODEL, key)
        self._lru._lru.push(self._MODEL, key, entry.cache_type)


# --- The single-sequence path (engine/solo.py, engine/speculative.py). ---

__all__ += [
    "cache_length",
    "can_trim_cache",
    "compact_cache",
    "make_cache",
    "stop_matcher",
    "trim_cache",
]


def make_cache(model: Any) -> list[Any]:
    """A fresh (unbatched) KV cache for `model`."""
    cache: list[Any] = make_prompt_cache(model)
    return cache


def can_trim_cache(cache: list[Any], after: int = 0) -> bool:
    """Whether `cache` could drop tokens again after `after` more are fed.

    A sliding-window cache can only while it holds fewer tokens than its window.
    """
    if not can_trim_prompt_cache(cache):
        return False
    for c in cache:
        window = getattr(c, "max_size", None)
        if window is not None and c.offset + after >= window:
            return False
    return True


def trim_cache(cache: list[Any], tokens: int) -> None:
    """Drop the newest `tokens` tokens from `cache` (in place)."""
    if tokens > 0:
        trim_prompt_cache(cache, tokens)


def compact_cache(cache: list[Any]) -> None:
    """Copy each plain KV layer down to the tokens it holds (in place): a lone sequence's
    cache grows 256 slots at a time, and a kept entry should cost only what it holds."""
    for layer in cache:
        grown = type(layer) is KVCache and layer.keys is not None
        if grown and layer.keys.shape[2] > layer.offset:
            keys, values = layer.keys_and_values()
            layer.keys, layer.values = mx.contiguous(keys), mx.contiguous(values)


def cache_length(cache: list[Any]) -> int:
    """How many tokens `cache` holds (0 for a cache that does not say)."""
    return int(getattr(cache[0], "offset", 0)) if cache else 0


def stop_matcher(stop: Sequence[Sequence[int]]) -> Any:
    """mlx-lm's stop-sequence matcher: `advance(token)` is True when a sequence completes."""
    return StopSequences(stop).matcher()


def streaming_detokenizer(tokenizer: TokenizerWrapper) -> Any:
    """A fresh streaming detokenizer whose segments add up to `tokenizer.decode(tokens)`.

    mlx-lm's BPE detokenizer drops the leading space of the first token, which a
    completion like "The capital is" → " Paris" needs; this one keeps it.
    """
    detokenizer = tokenizer.detokenizer
    if isinstance(detokenizer, BPEStreamingDetokenizer):
        # An instance attribute shadows the method.
        detokenizer._maybe_trim_space = _keep_text  # type: ignore[method-assign]
    return detokenizer


def _keep_text(text: str) -> str:
    return text


def load_tokenizer(path: Path) -> TokenizerWrapper:
    """mlx-lm's tokenizer for a folder (tokenizer.json and friends)."""
    from mlx_lm import tokenizer_utils

    wrapper: TokenizerWrapper = tokenizer_utils.load(path)
    return wrapper


def tool_parser(name: str) -> Any:
    """mlx-lm's tool-call parser module `name` (ImportError when there is none)."""
    import importlib

    return importlib.import_module(f"mlx_lm.tool_parsers.{name}")


def tool_parser_names() -> list[str]:
    """The tool-call parsers this mlx-lm ships."""
    import pkgutil

    import mlx_lm.tool_parsers

    return sorted(m.name for m in pkgutil.iter_modules(mlx_lm.tool_parsers.__path__))


def infer_tool_parser(hf_tokenizer: Any) -> str | None:
    """The tool-call parser mlx-lm picks for a Hugging Face tokenizer (None: no tool calls)."""
    from mlx_lm import tokenizer_utils

    infer: Callable[[Any], object] = tokenizer_utils._infer_tool_parser
    name = infer(hf_tokenizer)
    return None if name is None else str(name)


# --- The store's side: `mlxctl create` with QUANTIZE. ---

__all__ += ["quantize_dir"]


def quantize_dir(source: Path, target: Path, *, bits: int, group_size: int) -> dict[str, Any]:
    """Write `source`'s weights, quantized, and its config.json into `target`; the new config.

    Only weights and config are written: tokenizer files stay the source's (the
    store shares those blobs). Loads lazily, so memory holds one copy at most.
    """
    import contextlib
    import io

    loaded: Any = _utils.load(str(source), lazy=True, return_config=True)
    model, config = loaded[0], loaded[-1]
    # mlx-lm reports bits per weight on stdout; the CLI owns stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        model, config = _utils.quantize_model(model, dict(config), group_size, bits)
    target.mkdir(parents=True, exist_ok=True)
    _utils.save_model(target, model)
    _utils.save_config(dict(config), config_path=target / "config.json")
    return dict(config)
