"""The memory planner: how much of a sharded model each host holds, and whether it fits.

The weights are read per layer from the safetensors headers (`layer_bytes`, cached by
folder and file sizes). mlx-lm splits the model evenly between ranks:

    tensor    every rank holds 1/n of each layer and of the KV cache (the heads are
              split); tensors outside the layers (embeddings, head, norms) count in full
    pipeline  rank r holds its layers (mlx-lm's split: the low ranks get the extra
              ones, the last layers go to rank 0) and their KV; every stage keeps the
              embeddings, final norm and head

A host holds the sum of its ranks. Figures are upper bounds: what mlx-lm replicates
is counted in full. `plan` is pure; `check` raises the 4xx that names the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlxctl.errors import InvalidInput
from mlxctl.sharding.spec import ShardSettings
from mlxctl.store.local.modelinfo import WEIGHT_GLOB, read_safetensors_json
from mlxctl.units import human_bytes

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class ShardDoesNotFit(InvalidInput):
    """A host's share of a sharded model exceeds that host's budget."""

    code = "shard_does_not_fit"


@dataclass(frozen=True)
class LayerBytes:
    """A model's weight bytes: outside the layers, and per layer (index = layer number)."""

    shared: int
    layers: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.shared + sum(self.layers)


@dataclass(frozen=True)
class HostShare:
    host: str
    ranks: int
    weights: int
    kv: int
    budget: int
    local: bool

    @property
    def total(self) -> int:
        return self.weights + self.kv

    @property
    def fits(self) -> bool:
        return self.total <= self.budget


@dataclass(frozen=True)
class ShardPlan:
    hosts: tuple[HostShare, ...]

    @property
    def local_bytes(self) -> int:
        """What this machine holds: the daemon's budget counts it like a worker's estimate."""
        return sum(share.total for share in self.hosts if share.local)

    def refusal(self, slug: str) -> ShardDoesNotFit | None:
        for share in self.hosts:
            if not share.fits:
                return ShardDoesNotFit(
                    f"model '{slug}' does not fit host '{share.host}': its {share.ranks} "
                    f"rank(s) hold {human_bytes(share.total)} (weights "
                    f"{human_bytes(share.weights)} + KV {human_bytes(share.kv)}), its budget "
                    f"is {human_bytes(share.budget)}",
                    hint="give that host fewer ranks or more memory (config.yaml shard.hosts), "
                    "or add a host",
                )
        return None


def pipeline_split(layers: int, ranks: int) -> list[tuple[int, int]]:
    """Each rank's [start, end) layers as mlx-lm splits them (rank 0 gets the last ones)."""
    base, extra = divmod(layers, ranks)
    sizes = [base + (1 if r < extra else 0) for r in range(ranks)]
    spans = []
    for rank in range(ranks):
        start = sum(sizes[rank + 1 :])
        spans.append((start, start + sizes[rank]))
    return spans


def plan(spec: ShardSettings, weights: LayerBytes, kv_total: int, local_budget: int) -> ShardPlan:
    """Each host's weights and KV (`kv_total`: the whole model's KV reservation)."""
    n = spec.world_size
    count = len(weights.layers)
    spans = pipeline_split(count, n) if spec.mode == "pipeline" and count >= n else None
    per_rank: list[tuple[int, int]] = []
    for rank in range(n):
        if spans is None:
            per_rank.append((weights.shared + -(-sum(weights.layers) // n), -(-kv_total // n)))
        else:
            start, end = spans[rank]
            mine = sum(weights.layers[start:end])
            kv = -(-kv_total * (end - start) // max(1, count))
            per_rank.append((weights.shared + mine, kv))
    shares: dict[str, list[int]] = {}
    order: list[tuple[str, int, bool]] = []  # host, budget, local (first entry decides)
    for rank, host in enumerate(spec.rank_hosts()):
        if host.host not in shares:
            shares[host.host] = [0, 0, 0]
            order.append((host.host, host.budget(local_budget), host.local))
        row = shares[host.host]
        row[0] += 1
        row[1] += per_rank[rank][0]
        row[2] += per_rank[rank][1]
    return ShardPlan(
        tuple(
            HostShare(name, shares[name][0], shares[name][1], shares[name][2], budget, local)
            for name, budget, local in order
        )
    )


def layer_bytes(folder: Path) -> LayerBytes:
    """The weights of the model in `folder`, per layer, from its safetensors headers."""
    files = sorted(folder.glob(WEIGHT_GLOB))
    return _layer_bytes(str(folder), tuple((f.name, f.stat().st_size) for f in files))


@lru_cache(maxsize=64)
def _layer_bytes(folder: str, files: tuple[tuple[str, int], ...]) -> LayerBytes:
    shared = 0
    layers: dict[int, int] = {}
    for name, _size in files:
        header = read_safetensors_json(Path(folder) / name)
        for tensor, entry in header.items():
            if tensor == "__metadata__" or not isinstance(entry, dict):
                continue
            begin, end = entry.get("data_offsets", (0, 0))
            size = int(end) - int(begin)
            found = _LAYER.search(tensor)
            if found is None:
                shared += size
            else:
                index = int(found.group(1))
                layers[index] = layers.get(index, 0) + size
    count = max(layers) + 1 if layers else 0
    return LayerBytes(shared, tuple(layers.get(i, 0) for i in range(count)))
