"""What a `shard:` section of config.yaml says (docs/config.md, docs/scale-out.md).

    shard:
      backend: ring              # ring (TCP) | jaccl | jaccl-ring (Thunderbolt RDMA)
      mode: tensor               # tensor: every layer split; pipeline: layers split
      hosts:
        - {host: 127.0.0.1, ip: 192.168.1.10, memory: 48GiB}   # rank 0: this machine
        - {host: mini.local, ip: 192.168.1.11, memory: 24GiB}  # over SSH

A host's share of the model is its `ranks` (mlx-lm splits evenly between ranks).
Rank 0 runs here, without SSH, and serves the API; the others start over SSH as
`mlx.launch` does it. Frozen and hashable: it is a load-time field of `ModelOptions`.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlxctl.errors import MlxctlError
from mlxctl.units import parse_size

_STRICT = ConfigDict(extra="forbid", frozen=True)
# mlx.launch runs a rank without SSH only when its host is exactly this address.
LOCAL_HOST = "127.0.0.1"
_LOCAL_NAMES = frozenset({LOCAL_HOST, "localhost"})

Backend = Literal["ring", "jaccl", "jaccl-ring"]
Mode = Literal["tensor", "pipeline"]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ShardHost(BaseModel):
    """One host of a sharded model: where it is, how many ranks it runs, its budget."""

    model_config = _STRICT

    host: str = Field(min_length=1)  # SSH name or address; 127.0.0.1: this machine
    ip: str | None = None  # where the other ranks reach it (ring, JACCL coordinator)
    ranks: int = Field(1, ge=1, le=64)  # its share: ranks / all ranks
    memory: str | None = None  # its budget; default (this machine): the daemon's
    rdma: tuple[str | None, ...] | None = None  # JACCL: its RDMA device to each rank

    @field_validator("memory", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # plain bytes
        if isinstance(value, str):
            try:
                parse_size(value)
            except MlxctlError as e:
                raise ValueError(e.message) from None
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None and not _is_ip(value):
            raise ValueError(f"ip '{value}' is not an IP address")
        return value

    @property
    def local(self) -> bool:
        return self.host in _LOCAL_NAMES

    @property
    def ssh(self) -> str:
        """What `mlx.launch` is told: the loopback address runs the rank without SSH."""
        return LOCAL_HOST if self.local else self.host

    @property
    def address(self) -> str | None:
        """The address the other ranks connect to."""
        return self.ip or (self.host if _is_ip(self.host) else None)

    def budget(self, local_budget: int) -> int:
        return parse_size(self.memory) if self.memory is not None else local_budget


class ShardSettings(BaseModel):
    """One model run across `hosts` by `mlx.launch` (see the module docstring)."""

    model_config = _STRICT

    hosts: tuple[ShardHost, ...] = Field(min_length=1)
    backend: Backend = "ring"
    mode: Mode = "tensor"
    python: str | None = Field(None, min_length=1)  # the same path on every host; default: ours

    @field_validator("hosts", mode="before")
    @classmethod
    def _plain_names(cls, value: object) -> object:
        # `hosts: [127.0.0.1, 127.0.0.1]` is short for one rank on each entry.
        if isinstance(value, list | tuple):
            return [{"host": h} if isinstance(h, str) else h for h in value]
        return value

    @model_validator(mode="after")
    def _placement(self) -> ShardSettings:
        first = self.hosts[0]
        if not first.local:
            raise ValueError(
                f"the first host is '{first.host}': it must be this machine (127.0.0.1), "
                "where rank 0 serves the API the daemon talks to"
            )
        if self.world_size < 2:
            raise ValueError("a sharded model needs at least 2 ranks (hosts, or ranks: 2)")
        remote = [h for h in self.hosts if not h.local]
        for host in remote:
            if host.memory is None:
                raise ValueError(f"host '{host.host}': give its memory budget (memory: 24GiB)")
        if remote:
            for host in self.hosts:
                if host.address is None or (host.local and host.ip is None):
                    raise ValueError(
                        f"host '{host.host}': give the IP address the other hosts reach it on "
                        "(ip: 192.168.1.10)"
                    )
        if self.backend != "ring":
            for host in self.hosts:
                if host.ranks != 1 or host.rdma is None or len(host.rdma) != self.world_size:
                    raise ValueError(
                        f"{self.backend}: host '{host.host}' needs one rank and `rdma`, its RDMA "
                        f"device to each of the {len(self.hosts)} hosts (null for itself)"
                    )
        return self

    @property
    def world_size(self) -> int:
        return sum(host.ranks for host in self.hosts)

    def rank_hosts(self) -> list[ShardHost]:
        """One entry per rank, in rank order."""
        return [host for host in self.hosts for _ in range(host.ranks)]

    def describe(self) -> str:
        where = ", ".join(f"{h.host}×{h.ranks}" if h.ranks > 1 else h.host for h in self.hosts)
        return f"{self.mode} parallel over {self.world_size} ranks ({where}, {self.backend})"
