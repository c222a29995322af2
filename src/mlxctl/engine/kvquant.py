"""A quantized KV cache that continuous batching can carry (`kv_bits` 4 or 8).

mlx-lm quantizes one sequence's KV (`QuantizedKVCache`) but its `BatchGenerator`
merges per-sequence caches through each class's `merge` into a batch cache, and
only plain, rotating and arrays caches have one. `QuantizedKV` is mlx-lm's cache
plus that `merge`; `BatchQuantizedKV` is `BatchKVCache` with its keys and values
kept as (packed, scales, biases) triples. The models' attention sees a cache with
`bits` and runs mlx-lm's quantized attention on it.

Only full-attention `KVCache` layers are quantized: sliding-window and recurrent
layers (bounded state) keep their own caches. The prompt cache keeps what the
batch hands back (a `QuantizedKV`), so stored prefixes stay quantized.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx.utils import tree_map

from mlxctl.engine.mlxlm import BatchKVCache, KVCache, QuantizedKVCache, dynamic_roll

__all__ = ["BITS", "GROUP_SIZES", "BatchQuantizedKV", "QuantizedKV", "quantize_cache"]

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)

Triple = tuple[mx.array, mx.array, mx.array]


def quantize_cache(cache: list[Any], bits: int, group_size: int) -> list[Any]:
    """`cache` with its empty full-attention layers replaced by quantized ones."""
    return [
        QuantizedKV(group_size=group_size, bits=bits)
        if type(c) is KVCache and c.keys is None
        else c
        for c in cache
    ]


class QuantizedKV(QuantizedKVCache):
    """One sequence's quantized KV, as mlx-lm keeps it, that batches."""

    def size(self) -> int:
        return int(self.offset)

    @classmethod
    def merge(cls, caches: list[QuantizedKV]) -> BatchQuantizedKV:
        return BatchQuantizedKV.merge(caches)


def _slice(triple: Triple, start: int, stop: int) -> Triple:
    a, b, c = (x[..., start:stop, :] for x in triple)
    return a, b, c


class BatchQuantizedKV(BatchKVCache):
    """`BatchKVCache` holding quantized keys and values (left-padded, like its parent)."""

    keys: Any  # (packed, scales, biases) once filled
    values: Any

    def __init__(self, left_padding: list[int], *, group_size: int, bits: int) -> None:
        super().__init__(left_padding)
        self.group_size = group_size
        self.bits = bits

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[Triple, Triple]:
        prev = self._idx
        steps = keys.shape[2]
        if self.keys is None or prev + steps > self.keys[0].shape[2]:
            self._grow(keys, values, steps)
        qk = mx.quantize(keys, group_size=self.group_size, bits=self.bits)
        qv = mx.quantize(values, group_size=self.group_size, bits=self.bits)
        self.offset = self.offset + steps
        self._idx += steps
        for i in range(3):
            self.keys[i][..., prev : self._idx, :] = qk[i]
            self.values[i][..., prev : self._idx, :] = qv[i]
        return self.keys_and_values()

    def _grow(self, keys: mx.array, values: mx.array, steps: int) -> None:
        batch, heads = keys.shape[:2]
        per_int = 32 // self.bits
        new = (self.step + steps - 1) // self.step * self.step

        def empty(dim: int) -> Triple:
            shape = (batch, heads, new)
            return (
                mx.zeros((*shape, dim // per_int), dtype=mx.uint32),
                mx.zeros((*shape, dim // self.group_size), dtype=keys.dtype),
                mx.zeros((*shape, dim // self.group_size), dtype=keys.dtype),
            )

        fresh_k, fresh_v = empty(keys.shape[-1]), empty(values.shape[-1])
        if self.keys is None:
            self.keys, self.values = fresh_k, fresh_v
            return
        held = (_slice(self.keys, 0, self._idx), _slice(self.values, 0, self._idx))
        self.keys, self.values = (
            tuple(mx.concatenate([old, add], axis=2) for old, add in zip(h, f, strict=True))
            for h, f in zip(held, (fresh_k, fresh_v), strict=True)
        )

    def keys_and_values(self) -> tuple[Triple, Triple]:
        return _slice(self.keys, 0, self._idx), _slice(self.values, 0, self._idx)

    def finalize(self) -> None:
        if self._right_padding is not None:
            shift = self._right_padding[:, None]
            self.keys, self.values = tree_map(
                lambda x: dynamic_roll(x, shift, axis=2), (self.keys, self.values)
            )
            self.offset = self.offset - self._right_padding
            self.left_padding += self._right_padding
            self._right_padding = None

    def filter(self, batch_indices: Any) -> None:
        if self.keys is not None:
            self.keys, self.values = tree_map(lambda x: x[batch_indices], (self.keys, self.values))
        self.offset = self.offset[batch_indices]
        self.left_padding = self.left_padding[batch_indices]
        trim = _int(mx.min(self.left_padding))
        if trim > 0:
            if self.keys is not None:
                self.keys, self.values = tree_map(
                    lambda x: x[..., trim:, :], (self.keys, self.values)
                )
            self._idx -= trim
            self.left_padding -= trim

    def extend(self, other: BatchQuantizedKV) -> None:
        if self.keys is None and other.keys is None:
            self.left_padding = mx.concatenate([self.left_padding, other.left_padding])
            self.offset = mx.concatenate([self.offset, other.offset])
            return
        idx = max(self._idx, other._idx)
        template = self.keys if self.keys is not None else other.keys
        vtemplate = self.values if self.values is not None else other.values
        size = max(c.keys[0].shape[2] for c in (self, other) if c.keys is not None)

        def padded(c: BatchQuantizedKV) -> tuple[Triple, Triple, mx.array, mx.array]:
            rows = int(c.offset.shape[0])
            if c.keys is None:
                k = _empty_like(template, rows)
                v = _empty_like(vtemplate, rows)
            else:
                k, v = c.keys, c.values
            left = idx - c._idx
            right = size - k[0].shape[2] - left

            def pad(x: mx.array) -> mx.array:
                r = right
                if r < 0:
                    x, r = x[..., :r, :], 0
                if left or r:
                    x = mx.pad(x, [(0, 0), (0, 0), (left, r), (0, 0)])
                return x

            return tree_map(pad, k), tree_map(pad, v), c.offset, c.left_padding + left

        mine, theirs = padded(self), padded(other)
        self.keys = tuple(mx.concatenate([a, b]) for a, b in zip(mine[0], theirs[0], strict=True))
        self.values = tuple(mx.concatenate([a, b]) for a, b in zip(mine[1], theirs[1], strict=True))
        self.offset = mx.concatenate([mine[2], theirs[2]])
        self.left_padding = mx.concatenate([mine[3], theirs[3]])
        self._idx = idx

    def extract(self, idx: int) -> QuantizedKV:
        cache = QuantizedKV(group_size=self.group_size, bits=self.bits)
        padding = _int(self.left_padding[idx])
        keys, values = tree_map(
            lambda x: mx.contiguous(x[idx : idx + 1, :, padding : self._idx]),
            (self.keys, self.values),
        )
        cache.keys, cache.values = keys, values
        cache.offset = int(keys[0].shape[2])
        return cache

    @classmethod
    def merge(cls, caches: list[QuantizedKV]) -> BatchQuantizedKV:
        first = caches[0]
        lengths = [c.size() for c in caches]
        longest = max(lengths)
        padding = [longest - n for n in lengths]
        cache = cls(padding, group_size=first.group_size, bits=first.bits)
        held = [c for c in caches if c.keys is not None and c.offset > 0]
        if longest == 0 or not held:
            return cache

        def gather(pick: Any) -> Triple:
            template: Triple = pick(held[0])
            parts = []
            for part in range(3):
                out = mx.zeros(
                    (len(caches), template[part].shape[1], longest, template[part].shape[3]),
                    dtype=template[part].dtype,
                )
                for i, (pad, c) in enumerate(zip(padding, caches, strict=True)):
                    if c.keys is not None and c.offset > 0:
                        out[i : i + 1, :, pad : pad + c.offset] = pick(c)[part][..., : c.offset, :]
                parts.append(out)
            return parts[0], parts[1], parts[2]

        cache.keys = gather(lambda c: c.keys)
        cache.values = gather(lambda c: c.values)
        cache.offset += longest
        cache._idx = longest
        return cache

    @property
    def state(self) -> tuple[Any, ...]:
        return self.keys, self.values, self.offset, self.left_padding, self._idx

    @state.setter
    def state(self, v: tuple[Any, ...]) -> None:
        self.keys, self.values, self.offset, self.left_padding, self._idx = v

    @property
    def nbytes(self) -> int:
        if self.keys is None:
            return 0
        return sum(x.nbytes for x in (*self.keys, *self.values))


def _int(scalar: mx.array) -> int:
    value = scalar.item()
    assert isinstance(value, int)
    return value


def _empty_like(triple: Triple, rows: int) -> Triple:
    a, b, c = (mx.zeros((rows, x.shape[1], 0, x.shape[3]), dtype=x.dtype) for x in triple)
    return a, b, c
