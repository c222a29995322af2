"""Benchmark: quantized KV, the disk prompt cache, checkpoints and a soak, on factory models.

    python bench/kvcache.py [--size small] [--prefix-tokens 4096] [--soak 300] [--only kv,disk,...]

Sections (each prints its reference from the same run and the ratio):
  kv      KV bits 8 and 4 vs full precision: bytes per token held (measured from the
          engine's prompt cache), decode tok/s, and how many 4k-token sequences fit 1 GiB.
  disk    second-turn TTFT over a long prefix after the worker was killed and restarted,
          disk cache on vs off (cold), beside mlx_lm.server (no disk cache) restarted too.
  hybrid  second-turn TTFT on the hybrid (qwen3_5) and sliding-window (gemma3_text)
          models: checkpoints on vs prompt cache off (cold).
  soak    several hundred mixed requests (streamed, half cancelled midway, repeats and new
          prompts) on one engine: RSS and MLX active memory after warm-up, after the soak,
          after the engine is closed.
Engines run in this process with OpenBLAS preloaded (re-exec, as workers do); servers are
real `mlxctl worker` and `mlx_lm.server` processes with the same OpenBLAS.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from worker import free_port, wait_ready  # bench/worker.py: this script runs from bench/

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
BUDGET = 1 << 30
SEQ = 4096


def _reexec_with_blas() -> None:
    from mlxctl.engine.blas import MARKER, preload_env

    if MARKER in os.environ:
        return
    env = preload_env(os.environ, "auto")
    if env is None:
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def model(arch: str, size: str) -> Path:
    from mlxctl.factory import make_model

    path = BENCH_DIR / "models" / f"{arch}-{size}"
    if not (path / "config.json").exists():
        make_model(path, arch=arch, size=size)
    return path


async def _stream(
    engine: Any, prompt: list[int], tokens: int, cancel_at: int = 0
) -> tuple[float, int]:
    """(TTFT seconds, tokens) of one greedy request; stops reading after `cancel_at` tokens."""
    from mlxctl.engine.types import DoneEvent, GenerationRequest, SamplingParams

    start = time.perf_counter()
    first = 0.0
    count = 0
    agen = engine.generate(GenerationRequest(prompt, tokens, SamplingParams(temperature=0.0)))
    async for event in agen:
        if isinstance(event, DoneEvent):
            break
        count += 1
        if count == 1:
            first = time.perf_counter() - start
        if cancel_at and count >= cancel_at:
            await agen.aclose()
            break
    return first, count


def _engine(path: Path, **options: Any) -> Any:
    from mlxctl.engine.generator import Engine

    engine = Engine(path, **options)
    engine.start()
    return engine


def bench_kv(size: str, rounds: int) -> None:
    from mlxctl.engine.cachetiers import CacheOptions
    from mlxctl.model_options import quantized_kv_bytes

    path = model("qwen2", size)
    prompt = [50 + (i * 7) % 4000 for i in range(512)]
    # The three engines side by side, their runs taken in turn, so load changes hit all alike.
    kinds = (None, 8, 4)
    engines = {
        b: _engine(path, cache_options=CacheOptions(kv_bits=b, kv_group_size=64)) for b in kinds
    }
    held: dict[int | None, int] = {}
    decode: dict[int | None, list[float]] = {b: [] for b in kinds}
    try:
        for bits, engine in engines.items():
            asyncio.run(_stream(engine, prompt[:32], 4))  # warm up
            before = engine.stats()["prompt_cache"]["bytes"]
            asyncio.run(_stream(engine, [7, *prompt], 65))
            # What one kept sequence holds: its prompt and 64 tokens but the last.
            held[bits] = engine.stats()["prompt_cache"]["bytes"] - before
        for i in range(rounds):
            for bits, engine in engines.items():
                start = time.perf_counter()
                ttft, n = asyncio.run(_stream(engine, [8 + i, *prompt], 65))
                decode[bits].append((n - 1) / (time.perf_counter() - start - ttft))
    finally:
        for engine in engines.values():
            engine.close()
    rows = {b: (held[b] / (len(prompt) + 1 + 64), statistics.median(decode[b])) for b in kinds}
    fp_bytes, fp_rate = rows[None]
    print(f"\n[kv] factory qwen2/{size}, float32, {len(prompt)}-token prompt, 64 tokens decoded")
    print(
        f"{'kv':>6} {'bytes/token':>12} {'ratio':>7} {'decode t/s':>11} {'ratio':>7} "
        f"{'4k seqs in 1 GiB':>17}"
    )
    for bits, (per_token, rate) in rows.items():
        fits = int(BUDGET // (per_token * SEQ))
        print(
            f"{bits or 'fp32':>6} {per_token:12.0f} {per_token / fp_bytes:7.3f} "
            f"{rate:11.1f} {rate / fp_rate:7.2f} {fits:17d}"
        )
    for group in (64, 128):
        fp16 = {b: quantized_kv_bytes(1 << 20, 2, b, group) / (1 << 20) for b in (8, 4)}
        print(
            f"  a float16 model, group {group} (scales and biases in float16): "
            f"8-bit {fp16[8]:.3f}, 4-bit {fp16[4]:.3f} of full size (targets 0.5, 0.25 ±10 %)"
        )


def _long_prefix(tokens: int) -> str:
    """About `tokens` tokens of system prompt (a rule is ~25 factory-tokenizer tokens)."""
    rules = (
        f"Rule {i}: answer politely and cite section {i} of the manual."
        for i in range(tokens // 25)
    )
    return " ".join(rules)


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=BENCH_DIR
    )


def _chat(port: int, model_name: str, messages: list[dict[str, str]]) -> tuple[float, str, int]:
    """(TTFT, text, cached tokens) of one streamed chat turn."""
    body = {
        "model": model_name,
        "messages": messages,
        "max_tokens": 8,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = 0.0
    text = []
    cached = 0
    import json

    with httpx.stream(
        "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=900
    ) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.read().decode()[:300]}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece and not first:
                    first = time.perf_counter() - start
                text.append(piece or "")
            usage = chunk.get("usage") or {}
            cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or cached
    return first or time.perf_counter() - start, "".join(text), int(cached)


def bench_disk(size: str, prefix_tokens: int) -> None:
    from mlxctl.engine.blas import MARKER

    path = model("qwen2", size)
    prefix = _long_prefix(prefix_tokens)
    turn1 = [{"role": "system", "content": prefix}, {"role": "user", "content": "Summarise."}]
    home = Path(tempfile.mkdtemp(prefix="kvbench-"))
    env = {**os.environ, "MLXCTL_HOME": str(home), "HF_HUB_CACHE": str(BENCH_DIR / "hf")}
    (BENCH_DIR / "hf").mkdir(parents=True, exist_ok=True)
    rows: dict[str, float] = {}
    py = sys.executable

    def ours(disk: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        cmd = [py, "-m", "mlxctl.cli.main", "worker", str(path), "--port", str(port)]
        cmd += ["--disk-cache-bytes", disk]
        proc = _start(cmd, env, BENCH_DIR / "kv-disk-worker.log")
        wait_ready(port, proc)
        return proc, port

    try:
        proc, port = ours("8GiB")
        cold1, reply, _ = _chat(port, "m", turn1)
        rows["mlxctl turn 1 (cold)"] = cold1
        folder = home / "prompt-cache"
        deadline = time.monotonic() + 120
        while not list(folder.glob("*/*-*.safetensors")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        turn2 = [
            *turn1,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "One line?"},
        ]
        proc, port = ours("8GiB")
        warm, _, cached = _chat(port, "m", turn2)
        rows["mlxctl turn 2 after restart, disk"] = warm
        proc.terminate()
        proc.wait()
        proc, port = ours("0")
        cold2, _, _ = _chat(port, "m", turn2)
        rows["mlxctl turn 2 after restart, no disk"] = cold2
        proc.terminate()
        proc.wait()
        # mlx_lm.server, restarted between the turns the same way (it keeps no disk cache).
        for label in ("turn 2 after restart",):  # a restart loses its memory cache: turn 1 moot
            port = free_port()
            cmd = [py, "-m", "mlx_lm", "server", "--model", str(path), "--port", str(port)]
            peer = _start(cmd, env, BENCH_DIR / "kv-disk-mlx_lm.log")
            try:
                wait_ready(port, peer)
                ttft, _, _ = _chat(port, str(path), turn2)
                rows[f"mlx_lm.server {label}"] = ttft
            finally:
                peer.kill()
                peer.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"\n[disk] factory qwen2/{size}, ~{prefix_tokens}-token system prompt, "
        f"BLAS: {env.get(MARKER, os.environ.get(MARKER))}"
    )
    for name, value in rows.items():
        print(f"  {name:42} TTFT {value * 1000:8.0f} ms")
    print(f"  mlxctl cached prompt tokens after restart: {cached}")
    print(
        f"  turn 2 after restart, disk vs cold: {warm / cold2:.3f}x (target <= 0.2); "
        f"vs mlx_lm.server restarted: {warm / rows['mlx_lm.server turn 2 after restart']:.3f}x"
    )


def bench_hybrid(size: str, prefix_tokens: int) -> None:
    from mlxctl.engine.cachetiers import CacheOptions

    print(f"\n[hybrid] second turn over a ~{prefix_tokens}-token prefix, factory models ({size})")
    for arch in ("qwen3_5", "gemma3_text"):
        path = model(arch, size)
        first = [100 + (i * 13) % 5000 for i in range(prefix_tokens)]
        second = [*first, *range(300, 340)]
        cached_engine = _engine(path, cache_options=CacheOptions(checkpoint_every=1024))
        cold_engine = _engine(path, prompt_cache_entries=0)
        try:
            asyncio.run(_stream(cached_engine, first, 8))
            warm, _ = asyncio.run(_stream(cached_engine, second, 8))
            cold, _ = asyncio.run(_stream(cold_engine, second, 8))
            reused = cached_engine.stats()["tokens_cached_total"]
        finally:
            cached_engine.close()
            cold_engine.close()
        print(
            f"  {arch:12} cold {cold * 1000:8.0f} ms  cached {warm * 1000:8.0f} ms  "
            f"ratio {warm / cold:.3f}x  ({reused} tokens reused)"
        )


def bench_soak(count: int) -> None:
    import mlx.core as mx
    import psutil

    path = model("qwen2", "tiny")
    proc = psutil.Process()
    rng = random.Random(0)
    engine = _engine(path, max_batch=8, prompt_cache_entries=16, prompt_cache_bytes=256 << 20)
    shared = [rng.randrange(20, 1500) for _ in range(300)]

    def workload(engine: Any, n: int) -> None:
        async def one(i: int) -> None:
            kind = i % 4
            length = rng.randrange(16, 600)
            prompt = shared[: rng.randrange(50, 300)] + [
                rng.randrange(20, 1500) for _ in range(length)
            ]
            if kind == 0:
                prompt = [*shared[:200], 1, 2, 3]  # a repeat: cache hit
            await _stream(engine, prompt, rng.randrange(8, 48), cancel_at=4 if kind == 1 else 0)

        async def run_all() -> None:
            for start in range(0, n, 8):
                await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))

        asyncio.run(run_all())

    def reading() -> tuple[float, float]:
        gc.collect()
        return proc.memory_info().rss / 2**20, mx.get_active_memory() / 2**20

    workload(engine, 40)
    warm = reading()
    started = time.perf_counter()
    workload(engine, count)
    took = time.perf_counter() - started
    soaked = reading()
    stats = engine.stats()
    engine.close()
    del engine
    closed = reading()
    print(
        f"\n[soak] factory qwen2/tiny, {count} requests in {took:.0f} s (8 at a time; "
        "a quarter cancelled after 4 tokens, a quarter repeats)"
    )
    print(f"  {'':14} {'RSS MiB':>9} {'MLX active MiB':>15}")
    for name, (rss, active) in (
        ("after warm-up", warm),
        ("after soak", soaked),
        ("after close", closed),
    ):
        print(f"  {name:14} {rss:9.1f} {active:15.1f}")
    print(
        f"  soak vs warm-up: RSS {soaked[0] / warm[0]:.3f}x, MLX active "
        f"{soaked[1] / max(warm[1], 1e-9):.3f}x; cancelled {stats['cancelled_total']}, "
        f"prompt-cache hits {stats['prompt_cache']['hits']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--prefix-tokens", type=int, default=4096)
    parser.add_argument("--soak", type=int, default=300)
    parser.add_argument("--kv-rounds", type=int, default=3, help="kv: decode runs per engine")
    parser.add_argument("--only", default="kv,disk,hybrid,soak")
    args = parser.parse_args()
    _reexec_with_blas()
    BENCH_DIR.mkdir(exist_ok=True)
    only = set(args.only.split(","))
    if "kv" in only:
        bench_kv(args.size, args.kv_rounds)
    if "hybrid" in only:
        bench_hybrid(args.size, args.prefix_tokens // 2)
    if "soak" in only:
        bench_soak(args.soak)
    if "disk" in only:
        bench_disk(args.size, args.prefix_tokens)


if __name__ == "__main__":
    main()
