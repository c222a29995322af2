"""The sharded argv: mlx.launch with a hostfile, mlx_lm.server with the model's options."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

from mlxctl.model_options import ModelOptions
from mlxctl.sharding.launch import command, first_rank_end, free_port_block, hostfile
from mlxctl.sharding.spec import ShardSettings
from mlxctl.supervision import logtail

TWO_MACS = ShardSettings.model_validate(
    {
        "hosts": [
            {"host": "127.0.0.1", "ip": "10.0.0.1"},
            {"host": "mini.local", "ip": "10.0.0.2", "memory": "24GiB"},
        ],
        "mode": "pipeline",
        "python": "/opt/venv/bin/python",
    }
)


def test_hostfile_runs_rank_zero_here_and_gives_every_rank_the_blas(tmp_path: Path) -> None:
    blas = tmp_path / "libopenblas.so.0"
    blas.write_bytes(b"")
    data = hostfile(TWO_MACS, str(blas))
    assert data["hosts"] == [
        {"ssh": "127.0.0.1", "ips": ["10.0.0.1"]},
        {"ssh": "mini.local", "ips": ["10.0.0.2"]},
    ]
    envs = data["envs"]
    assert isinstance(envs, list)
    assert f"LD_PRELOAD={blas}" in envs and "HF_HUB_OFFLINE=1" in envs


def test_command_writes_the_hostfile_and_passes_the_options(tmp_path: Path) -> None:
    options = replace(ModelOptions(), shard=TWO_MACS, kv_bits=8, max_batch=4)
    argv = command("big", "/models/big", options, "127.0.0.1", 8123, tmp_path / "run", "none")
    written = tmp_path / "run" / "shard-big.json"
    assert (written.stat().st_mode & 0o777) == 0o600
    assert json.loads(written.read_text())["backend"] == "ring"
    assert argv[0].endswith("mlx.launch")
    after = argv[argv.index("--") + 1 :]
    assert argv[argv.index("--hostfile") + 1] == str(written)
    assert argv[argv.index("--python") + 1] == "/opt/venv/bin/python"
    assert after[:4] == ["-m", "mlx_lm", "server", "--model"]
    assert after[after.index("--port") + 1] == "8123"
    assert after[after.index("--kv-bits") + 1] == "8"
    assert after[after.index("--decode-concurrency") + 1] == "4"
    assert after[-1] == "--pipeline"


def test_free_port_block_is_free() -> None:
    base = free_port_block(3)
    for port in range(base, base + 3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_first_rank_end_reads_the_latest_run(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text(
        f"{logtail.HEADER}x start: a\n[WARN] Node with rank 0 exited with code 1\n"
        f"{logtail.HEADER}y start: b\nRuntimeError: [ring] connection to a peer was lost\n"
        "\x1b[33m[WARN] Node with rank 1 exited with code -9 \x1b[0m\n"
        "[WARN] Node with rank 0 exited with code -15\n"
    )
    assert first_rank_end(logtail.latest_run(log)) == "rank 1 was killed by SIGKILL"
    assert first_rank_end(logtail.latest_run(tmp_path / "none.log")) is None
