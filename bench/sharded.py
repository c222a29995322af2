"""A model sharded over 2 ranks (mlx.launch, ring over loopback) beside one process.

    .venv/bin/python bench/sharded.py [--sizes small,0.5b] [--tokens 64] [--runs 4]

For each factory model (qwen2, float32) it runs, one at a time (an idle `mlx.launch`
still costs CPU, see below), `mlx_lm.server` in one process and the sharded launch the
daemon runs (`sharding.launch.command`: 2 ranks, tensor parallel, then pipeline), each
with the OpenBLAS preload, and streams the same greedy completion from each. Prints
decode tokens/s and time to first token as ratios to the single process, and the CPU
the `mlx.launch` process itself used (its I/O relay) as a share of one core.

On one machine both ranks share its cores and every step crosses the ring's TCP
loopback: this measures the overhead of sharding, not the speed-up of a second Mac.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlxctl.engine.blas import preload_env
from mlxctl.factory import make_model
from mlxctl.model_options import ModelOptions
from mlxctl.settings import Settings
from mlxctl.sharding.launch import command
from mlxctl.sharding.spec import ShardSettings
from mlxctl.supervision.process import free_port
from worker import wait_ready  # bench/worker.py: this script runs from bench/

PROMPT = "Once upon a time, in a lighthouse by the sea,"


@contextmanager
def server(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (its own process group) until stopped; every rank goes with it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def stream_once(url: str, model: str, tokens: int, bias: dict[str, float]) -> tuple[float, float]:
    """(ttft seconds, decode tokens/s) of one streamed greedy completion."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": bias,
    }
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            if json.loads(line[6:]).get("choices"):
                last = time.perf_counter()
                first = first or last
                chunks += 1
    return first - start, (chunks - 1) / (last - first) if chunks > 1 and last > first else 0.0


def bench_size(size: str, root: Path, args: argparse.Namespace, blas: str) -> None:
    model = make_model(root / size, arch="qwen2", size=size)
    eos = json.loads((model / "config.json").read_text())["eos_token_id"]
    bias = {str(t): -100.0 for t in (eos if isinstance(eos, list) else [eos])}
    env = preload_env(dict(os.environ), blas) or dict(os.environ)
    pair = ShardSettings.model_validate({"hosts": [{"host": "127.0.0.1", "ranks": 2}]})
    paths: dict[str, tuple[int, list[str]]] = {}
    port = free_port()
    single = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model)]
    paths["1 process"] = (port, [*single, "--port", str(port)])
    for mode in ("tensor", "pipeline"):
        options = replace(ModelOptions(), shard=pair.model_copy(update={"mode": mode}))
        port = free_port()
        argv = command(f"b-{mode}", str(model), options, "127.0.0.1", port, root, blas)
        paths[f"2 ranks, {mode}"] = (port, argv)
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    relay: dict[str, float] = {}
    for name, (port, argv) in paths.items():
        log = root / f"{size}-{name.replace(' ', '_').replace(',', '')}.log"
        url = f"http://127.0.0.1:{port}"
        with server(argv, env, log) as proc:
            wait_ready(port, proc, timeout=600, path="/health")
            leader = proc.pid
            stream_once(url, str(model), 8, bias)  # warm-up
            cpu, started = _cpu(leader), time.perf_counter()
            for _ in range(args.runs):
                got[name].append(stream_once(url, str(model), args.tokens, bias))
            relay[name] = (_cpu(leader) - cpu) / (time.perf_counter() - started)
    ref_tps = statistics.median(r[1] for r in got["1 process"])
    ref_ttft = statistics.median(r[0] for r in got["1 process"])
    print(f"\nqwen2 {size} float32, {args.tokens} tokens, {args.runs} runs each (medians)")
    print("| path | decode tok/s | ratio | TTFT ms | ratio | launcher CPU |")
    print("|---|---|---|---|---|---|")
    for name, runs in got.items():
        tps = statistics.median(r[1] for r in runs)
        ttft = statistics.median(r[0] for r in runs)
        row = f"| {name} | {tps:.1f} | {tps / ref_tps:.2f}× | {1000 * ttft:.0f} |"
        launcher = "—" if name == "1 process" else f"{100 * relay[name]:.0f} % of a core"
        print(f"{row} {ttft / ref_ttft:.2f}× | {launcher} |")


def _cpu(pid: int) -> float:
    """CPU seconds `pid` itself used (for the launcher: its relay loop, not the ranks)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="small,0.5b")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    # A timeout's SIGTERM unwinds, so every server group started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    blas = Settings.from_env().blas
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="mlxctl-bench-sharded-") as tmp:
        for size in args.sizes.split(","):
            bench_size(size, Path(tmp), args, blas)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
