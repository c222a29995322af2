"""The command that runs a sharded model: `mlx.launch` starting `mlx_lm.server` on every rank.

    mlx.launch --hostfile RUN/shard-SLUG.json --backend ring --starting-port P
               --python PYTHON -- -m mlx_lm server --model PATH --host H --port PORT ...

The hostfile (written here, one entry per rank) names each rank's SSH host, the
address the others reach it on and, for JACCL, its RDMA devices; its `envs` reach
every rank (the OpenBLAS preload, offline HF hub). Rank 0 is `127.0.0.1`, which
`mlx.launch` runs without SSH, so it stays in the supervised process group and its
port is checked like any external server's. The ring backend listens on P, P+1, ...
(one port per rank): a free block is picked at each start.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
from pathlib import Path

from mlxctl.engine.blas import preload_env
from mlxctl.model_options import ModelOptions
from mlxctl.sharding.spec import ShardSettings
from mlxctl.units import parse_size


def mlx_launch() -> str:
    """`mlx.launch` beside this Python (the daemon's environment), else on PATH."""
    beside = Path(sys.executable).parent / "mlx.launch"
    return str(beside) if beside.exists() else (shutil.which("mlx.launch") or "mlx.launch")


def free_port_block(count: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """The first of `count` consecutive ports nobody listens on right now."""
    for _ in range(tries):
        base = random.randint(20000, 60000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise OSError(f"no block of {count} free ports found for the ring backend")


def hostfile(spec: ShardSettings, blas: str) -> dict[str, object]:
    """`mlx.launch`'s hostfile: one host per rank, and the environment every rank gets."""
    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(preload_env({}, blas) or {})}
    hosts = []
    for host in spec.rank_hosts():
        address = host.address
        entry: dict[str, object] = {"ssh": host.ssh, "ips": [address] if address else []}
        if host.rdma is not None:
            entry["rdma"] = list(host.rdma)
        hosts.append(entry)
    return {"backend": spec.backend, "envs": [f"{k}={v}" for k, v in env.items()], "hosts": hosts}


def server_argv(model: str, options: ModelOptions, host: str, port: int) -> list[str]:
    """`mlx_lm.server`'s flags on every rank, from the model's options."""
    assert options.shard is not None
    argv = ["-m", "mlx_lm", "server", "--model", model, "--host", host, "--port", str(port)]
    argv += ["--decode-concurrency", str(options.max_batch)]
    argv += ["--prompt-cache-size", str(options.prompt_cache_entries)]
    argv += ["--prompt-cache-bytes", str(parse_size(options.prompt_cache_bytes))]
    if options.kv_bits:
        argv += ["--kv-bits", str(options.kv_bits), "--kv-group-size", str(options.kv_group_size)]
    return [*argv, "--pipeline"] if options.shard.mode == "pipeline" else argv


def command(
    slug: str, model: str, options: ModelOptions, host: str, port: int, run_dir: Path, blas: str
) -> list[str]:
    """The argv of a sharded model; writes the hostfile it names (0600, in `run_dir`)."""
    spec = options.shard
    assert spec is not None
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"shard-{slug}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(hostfile(spec, blas), f)
    python = spec.python or sys.executable
    ports = free_port_block(spec.world_size)
    argv = [mlx_launch(), "--hostfile", str(path), "--backend", spec.backend]
    argv += ["--starting-port", str(ports), "--python", python, "--"]
    return [*argv, *server_argv(model, options, host, port)]


# mlx.launch's words when a rank ends (it then stops the others and exits 0).
_RANK_END = re.compile(r"Node with rank (\d+) (exited with code (-?\d+)|was killed)")


def first_rank_end(log: str | None) -> str | None:
    """Which rank ended first, in words, from the output of one run of `mlx.launch`."""
    found = _RANK_END.search(log or "")
    if found is None:
        return None
    rank, code = found.group(1), found.group(3)
    if code is None:
        return f"rank {rank} was killed"
    number = int(code)
    if number < 0:
        with contextlib.suppress(ValueError):
            return f"rank {rank} was killed by {signal.Signals(-number).name}"
    return f"rank {rank} exited with code {number}"
