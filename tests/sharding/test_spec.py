"""The `shard:` section: what it accepts, and the placements it refuses with their reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlxctl.sharding.spec import ShardSettings


def spec(**fields: Any) -> ShardSettings:
    return ShardSettings.model_validate(fields)


def test_plain_names_and_ranks_are_one_rank_per_entry() -> None:
    two = spec(hosts=["127.0.0.1", "localhost"])
    assert two.world_size == 2 and [h.ssh for h in two.rank_hosts()] == ["127.0.0.1"] * 2
    pair = spec(hosts=[{"host": "127.0.0.1", "ranks": 2}], mode="pipeline")
    assert pair.world_size == 2 and pair.backend == "ring"
    assert pair.describe() == "pipeline parallel over 2 ranks (127.0.0.1×2, ring)"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"hosts": ["10.0.0.2", "127.0.0.1"]}, "must be this machine"),
        ({"hosts": ["127.0.0.1"]}, "at least 2 ranks"),
        ({"hosts": [{"host": "127.0.0.1", "ip": "10.0.0.1"}, "10.0.0.2"]}, "memory budget"),
        (
            {"hosts": ["127.0.0.1", {"host": "mini", "ip": "10.0.0.2", "memory": "8GiB"}]},
            "IP address the other hosts reach it on",
        ),
        ({"hosts": ["127.0.0.1", "127.0.0.1"], "backend": "jaccl"}, "needs one rank and `rdma`"),
        ({"hosts": ["127.0.0.1", "127.0.0.1"], "backend": "mpi"}, "'ring', 'jaccl'"),
        ({"hosts": [{"host": "127.0.0.1", "ranks": 2, "memory": "lots"}]}, "not a size"),
        ({"hosts": [{"host": "127.0.0.1", "ranks": 2, "ip": "mini"}]}, "not an IP address"),
    ],
)
def test_placements_refused_with_the_reason(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        spec(**fields)
    assert words in str(refused.value)


def test_two_macs_over_jaccl_name_their_rdma_devices() -> None:
    hosts = [
        {"host": "127.0.0.1", "ip": "10.0.0.1", "rdma": [None, "rdma_en3"]},
        {"host": "mini", "ip": "10.0.0.2", "memory": "24GiB", "rdma": ["rdma_en3", None]},
    ]
    two = spec(hosts=hosts, backend="jaccl")
    assert [h.address for h in two.hosts] == ["10.0.0.1", "10.0.0.2"]
    assert two.hosts[1].budget(1) == 24 << 30 and two.hosts[0].budget(7) == 7
