"""Our GGUF worker against `llama_cpp.server` on the same file, and against our MLX worker.

    .venv/bin/python bench/gguf.py [--size small] [--quant Q8_0] [--tokens 128] [--runs 3]

Builds one factory model (MLX safetensors) and its GGUF copy, starts three servers:
  - `mlxctl worker <gguf folder>`       (llama.cpp engine behind our worker app)
  - `python -m llama_cpp.server`        (the reference server on the same GGUF file)
  - `mlxctl worker <mlx folder>`        (the MLX engine on the same weights)
and streams the same chat to each, single stream and 4 concurrent: decode tokens/s
(per stream and aggregate), median time to first token. EOS is biased away so every
reply has exactly --tokens tokens. Prints one table and the ratios to llama_cpp.server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and would shadow the gguf package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import httpx  # noqa: E402

from mlxctl.factory import make_model  # noqa: E402
from mlxctl.factory.gguf import write_gguf  # noqa: E402
from mlxctl.supervision.process import free_port  # noqa: E402

MESSAGES = [{"role": "user", "content": "Tell me a story about a lighthouse."}]


@contextmanager
def server(argv: list[str], port: int, log: Path) -> Iterator[str]:
    """Run `argv` until /v1/models answers; yield its base URL; stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:4]} exited; see {log}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:4]} did not start; see {log}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def stream_once(url: str, tokens: int, bias: dict[str, float]) -> tuple[float, float, int]:
    """(ttft seconds, decode tokens/s, content chunks) of one streamed chat."""
    body: dict[str, Any] = {
        "model": "m",
        "messages": MESSAGES,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": bias,
    }
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    decode = (chunks - 1) / (last - first) if chunks > 1 and last > first else 0.0
    return first - start, decode, chunks


def measure(
    url: str, tokens: int, runs: int, concurrency: int, bias: dict[str, float]
) -> dict[str, float]:
    ttfts: list[float] = []
    per_stream: list[float] = []
    aggregate: list[float] = []
    stream_once(url, 8, bias)  # warm-up
    for _ in range(runs):
        results: list[tuple[float, float, int]] = []

        def one(into: list[tuple[float, float, int]] = results) -> None:
            into.append(stream_once(url, tokens, bias))

        threads = [threading.Thread(target=one) for _ in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        ttfts += [r[0] for r in results]
        per_stream += [r[1] for r in results]
        aggregate.append(sum(r[2] for r in results) / wall)
    return {
        "ttft_ms": 1000 * statistics.median(ttfts),
        "decode_tps": statistics.median(per_stream),
        "aggregate_tps": statistics.median(aggregate),
    }


def eos_bias(model_dir: Path) -> dict[str, float]:
    config = json.loads((model_dir / "tokenizer.json").read_text())
    return {str(t["id"]): -100.0 for t in config["added_tokens"] if t.get("special")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="qwen2", choices=["qwen2", "llama"])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "0.5b"])
    parser.add_argument("--quant", default="Q8_0", choices=["F16", "Q8_0", "Q4_0"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mlxctl-bench-gguf-"))
    mlx_dir = make_model(tmp / "mlx", arch=args.arch, size=args.size)
    gguf_dir = tmp / "gguf"
    gguf_file = write_gguf(mlx_dir, gguf_dir / f"model-{args.quant.lower()}.gguf", quant=args.quant)
    bias = eos_bias(mlx_dir)
    env_python = sys.executable
    worker = [env_python, "-m", "mlxctl.cli.main", "worker"]
    threads = str(os.cpu_count() or 1)
    p1, p2, p3 = free_port(), free_port(), free_port()
    servers = {
        "mlxctl gguf": [*worker, str(gguf_dir), "--port", str(p1)],
        "llama_cpp.server": [
            env_python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf_file),
            "--port",
            str(p2),
            "--n_ctx",
            "4096",
            "--n_threads",
            threads,
            # Its default cancels the running stream when another request arrives.
            "--interrupt_requests",
            "False",
        ],
        "mlxctl mlx": [*worker, str(mlx_dir), "--port", str(p3)],
    }
    ports = {"mlxctl gguf": p1, "llama_cpp.server": p2, "mlxctl mlx": p3}
    table: dict[tuple[str, int], dict[str, float]] = {}
    for name, argv in servers.items():
        with server(argv, ports[name], tmp / f"{name.replace(' ', '_')}.log") as url:
            for concurrency in (1, 4):
                table[name, concurrency] = measure(url, args.tokens, args.runs, concurrency, bias)

    print(f"\n{args.arch}/{args.size} {args.quant}, {args.tokens} tokens, {args.runs} runs")
    print(f"{'server':<18} {'streams':>7} {'TTFT ms':>9} {'tok/s/stream':>13} {'tok/s total':>12}")
    for (name, conc), row in table.items():
        print(
            f"{name:<18} {conc:>7} {row['ttft_ms']:>9.1f} {row['decode_tps']:>13.1f} "
            f"{row['aggregate_tps']:>12.1f}"
        )
    print("\nratios vs llama_cpp.server (decode tok/s, total tok/s, TTFT):")
    for name in ("mlxctl gguf", "mlxctl mlx"):
        for conc in (1, 4):
            ours, ref = table[name, conc], table["llama_cpp.server", conc]
            print(
                f"  {name:<12} x{conc}: decode {ours['decode_tps'] / ref['decode_tps']:.2f}x, "
                f"total {ours['aggregate_tps'] / ref['aggregate_tps']:.2f}x, "
                f"TTFT {ours['ttft_ms'] / ref['ttft_ms']:.2f}x"
            )


if __name__ == "__main__":
    main()
