"""What `mlxctl serve` costs in front of a worker, on the factory `small` models.

    .venv/bin/python bench/daemon.py [--runs 8] [--tokens 64] [--ttft-runs 30] [--fake]

Starts a daemon (in a temp MLXCTL_HOME, one model loaded at a time), then measures
with the same streaming client, interleaving the two paths:
  - decode tokens/s and time to first token, through the daemon vs straight to its worker
    (targets: decode ≥ 0.98×, added median TTFT ≤ 5 ms);
  - time to load a model on demand, and to swap between two models (evict + load);
  - the daemon's idle RSS, and its RSS after the models are unloaded (back to ±5%).
With --fake the workers are fake (no model, 2000 tokens/s), which isolates the daemon's
own cost from model noise. Prints one table; ratios are medians over pairs of runs
(in alternating order) taken in this same run, so background load hits both paths alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import ModelRecord, open_registry

CHAT = "/v1/chat/completions"
# --fake: a worker with no model, streaming as fast as a big GPU would, to expose the proxy.
FAKE_OPTIONS = ["--load-seconds", "0.5", "--tokens-per-second", "2000"]
MESSAGES = [{"role": "user", "content": "Tell me a story about a lighthouse."}]


def commands() -> tuple[list[str], str]:
    """`mlxctl serve` and the worker command, through cli/main.py once it registers them."""
    from mlxctl.cli.main import cli

    if "serve" in cli.commands:
        serve = [sys.executable, "-m", "mlxctl.cli.main", "serve"]
    else:
        code = (
            "import sys; from mlxctl.cli.main import cli, main; from mlxctl.cli import daemon; "
            "cli.add_command(daemon.serve); main(sys.argv[1:])"
        )
        serve = [sys.executable, "-c", code, "serve"]
    worker = ""
    if "worker" not in cli.commands:
        code = "import sys; from mlxctl.cli.worker import worker; worker(sys.argv[1:])"
        worker = shlex.join([sys.executable, "-c", code])
    return serve, worker


@contextmanager
def daemon(home: Path, fake: bool) -> Iterator[tuple[str, psutil.Process]]:
    serve, worker = commands()
    if fake:
        worker = shlex.join([sys.executable, "-m", "mlxctl.supervision.fake", *FAKE_OPTIONS])
    env = {
        **os.environ,
        "MLXCTL_HOME": str(home),
        "MLXCTL_HOST": "127.0.0.1:0",
        "MLXCTL_WORKER_TEST_HOOKS": "1",
        "MLXCTL_MAX_LOADED_MODELS": "1",
        "MLXCTL_WORKER_COMMAND": worker,
    }
    log_path = home / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*serve, "--port", "0", "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            for line in log_path.read_text().splitlines():
                if '"daemon.listening"' in line:
                    port = json.loads(line)["port"]
            time.sleep(0.02)
        if port is None:
            raise SystemExit(f"the daemon did not start:\n{log_path.read_text()}")
        url = f"http://127.0.0.1:{port}"
        while not healthy(url):  # the port is logged before the lifespan has finished
            time.sleep(0.02)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health").status_code == 200
    except httpx.ConnectError:
        return False


def stream(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[float, float, int]:
    """(time to first event, decode tokens/s after it, content events) of one streamed chat."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with client.stream("POST", url + CHAT, json={**body, "stream": True}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            now = time.perf_counter()
            if not first:
                first = now
            if '"content":"' in line and '"content":""' not in line:
                tokens += 1
                last = now
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return first - started, decode, tokens


def order(i: int, direct: str, daemon: str) -> list[tuple[str, str]]:
    pair = [("direct", direct), ("daemon", daemon)]
    return pair if i % 2 == 0 else pair[::-1]


def paired(
    client: httpx.Client, direct: str, daemon: str, model: str, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """TTFT (`args.ttft_runs` pairs) and decode tok/s (`args.runs` pairs of `args.tokens`
    forced tokens) of `model`, each pair run first one path then the other (alternating
    which goes first), so drift and background load hit both paths alike."""
    ttft: dict[str, list[float]] = {"direct": [], "daemon": []}
    short = {"model": model, "messages": MESSAGES, "max_tokens": 1}
    for i in range(args.ttft_runs):
        for name, target in order(i, direct, daemon):
            ttft[name].append(stream(client, target, short)[0])
    decode: dict[str, list[float]] = {"direct": [], "daemon": []}
    forced = "word " * args.tokens
    long = {**short, "max_tokens": args.tokens + 8, "mlxctl_test_force": forced}
    for i in range(args.runs):
        for name, target in order(i, direct, daemon):
            decode[name].append(stream(client, target, long)[1])
    return ttft, decode


def medians(
    ttft: dict[str, list[float]], decode: dict[str, list[float]]
) -> tuple[float, float, float, float, float, float]:
    """(decode direct, daemon, median pair ratio, TTFT direct, daemon, median added ms)."""
    direct, daemon = decode["direct"], decode["daemon"]
    ratio = statistics.median(b / a for a, b in zip(direct, daemon, strict=True))
    added = statistics.median(b - a for a, b in zip(ttft["direct"], ttft["daemon"], strict=True))
    return (
        *(statistics.median(direct), statistics.median(daemon), ratio),
        *(statistics.median(ttft["direct"]), statistics.median(ttft["daemon"]), 1000 * added),
    )


def timed(client: httpx.Client, url: str, model: str) -> float:
    started = time.perf_counter()
    body = {"model": model, "messages": MESSAGES, "max_tokens": 1}
    client.post(url + CHAT, json=body).raise_for_status()
    return time.perf_counter() - started


def ps(client: httpx.Client, url: str) -> dict[str, dict[str, Any]]:
    return {m["model"]: m for m in client.get(url + "/api/admin/ps").json()["models"]}


def total_rss(proc: psutil.Process) -> int:
    return int(proc.memory_info().rss) + sum(
        int(c.memory_info().rss) for c in proc.children(recursive=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="decode runs per path")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per decode run")
    parser.add_argument("--ttft-runs", type=int, default=30, help="TTFT runs per path")
    parser.add_argument(
        "--fake", action="store_true", help="fake workers (2000 tok/s): the daemon's own cost"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlxctl-bench-") as tmp:
        root = Path(tmp)
        os.environ["MLXCTL_HOME"] = str(root / "home")
        registry = open_registry()
        for slug, arch in (("small-a", "qwen2"), ("small-b", "llama")):
            if args.fake:
                registry.add(ModelRecord(slug=slug, cache_path=f"/fake/{slug}", size_bytes=1))
            else:
                path = make_model(root / slug, arch=arch, size="small")
                register_path(registry, path, slug=slug)
        registry.db.close()

        with daemon(root / "home", args.fake) as (url, proc), httpx.Client(timeout=300) as client:
            time.sleep(1.0)
            idle_rss = proc.memory_info().rss
            cold = timed(client, url, "small-a")
            worker_url = ps(client, url)["small-a"]["url"]
            timed(client, worker_url, "small-a")  # warm the worker's prompt cache and pool

            ttft, decode = paired(client, worker_url, url, "small-a", args)

            swaps = [timed(client, url, m) for m in ("small-b", "small-a") * 2]
            loaded_rss = total_rss(proc)
            for model in ps(client, url):
                client.post(url + "/api/admin/unload", json={"model": model}).raise_for_status()
            time.sleep(1.0)
            after_rss = total_rss(proc)

    d_direct, d_daemon, d_ratio, t_direct, t_daemon, added_ms = medians(ttft, decode)
    rows = [
        (
            "decode tok/s (median)",
            f"{d_direct:.1f}",
            f"{d_daemon:.1f}",
            f"{d_ratio:.3f}x",
            "≥ 0.98x",
            d_ratio >= 0.98,
        ),
        (
            "TTFT ms (median)",
            f"{t_direct * 1000:.1f}",
            f"{t_daemon * 1000:.1f}",
            f"{added_ms:+.1f} ms",
            "≤ +5 ms",
            added_ms <= 5,
        ),
        ("load on demand s", "", f"{cold:.2f}", "", "", None),
        ("swap a↔b s (median)", "", f"{statistics.median(swaps):.2f}", "", "", None),
        ("daemon idle RSS MB", "", f"{idle_rss / 1e6:.1f}", "", "", None),
        ("RSS with a model MB", "", f"{loaded_rss / 1e6:.1f}", "", "", None),
        (
            "RSS after unload MB",
            f"{idle_rss / 1e6:.1f}",
            f"{after_rss / 1e6:.1f}",
            f"{after_rss / idle_rss:.3f}x",
            "±5%",
            abs(after_rss / idle_rss - 1) <= 0.05,
        ),
    ]
    header = ("measure", "direct", "daemon", "ratio", "target", "ok")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + " | ok")
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        verdict = "" if row[5] is None else ("yes" if row[5] else "NO")
        print(" | ".join(cells) + f" | {verdict}")
    print(f"\ndecode tok/s per run: direct {[round(x, 1) for x in decode['direct']]}")
    print(f"                      daemon {[round(x, 1) for x in decode['daemon']]}")


if __name__ == "__main__":
    main()
