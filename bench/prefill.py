"""Benchmark: long prompts arriving together, on the engine in-process (no HTTP).

    python bench/prefill.py [--size small] [--long 2048] [--tokens 32] [--streams 1,2,4]
        [--variants 2048x1,512x1,512x2,512x4] [--rounds 2]

Each variant is an engine (`prefill_step_size` x `long_prefills`) on the same factory model,
OpenBLAS preloaded, prompt cache off; at each concurrency the variants take turns
(A, B, C, A, B, C ...) so the machine's load hits them alike. Per round: each request's
TTFT, the round's wall time and its aggregate tokens/s (generated tokens / wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from speculative import _model, _reexec_with_blas

from mlxctl.engine.generator import Engine
from mlxctl.engine.types import DoneEvent, GenerationRequest, SamplingParams

Variant = tuple[int, int]  # (prefill_step_size, long_prefills)


def prompts(engine: Engine, long: int, streams: int, round_: int) -> list[list[int]]:
    """`streams` distinct chat-templated ~`long`-token prompts (first words differ)."""
    out = []
    for i in range(streams):
        text = " ".join(
            f"Note {round_}.{streams}.{i}.{k}: the valve {k} opens at dawn."
            for k in range(long // 22)
        )
        messages = [{"role": "user", "content": text}]
        out.append(list(engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True)))
    return out


async def one(engine: Engine, prompt: list[int], tokens: int, start: float) -> tuple[float, int]:
    """(TTFT s from `start`, tokens generated) of one greedy request."""
    request = GenerationRequest(prompt, tokens, SamplingParams(temperature=0.0))
    first, count = float("nan"), 0
    async for event in engine.generate(request):
        if isinstance(event, DoneEvent):
            break
        if count == 0:
            first = time.perf_counter() - start
        count += 1
    return first, count


async def round_of(
    engine: Engine, batch: list[list[int]], tokens: int
) -> tuple[list[float], float, int]:
    """(TTFTs, wall s, generated tokens) of `batch` sent together."""
    start = time.perf_counter()
    results = await asyncio.gather(*[one(engine, p, tokens, start) for p in batch])
    wall = time.perf_counter() - start
    return sorted(r[0] for r in results), wall, sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--long", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--streams", default="1,2,4")
    parser.add_argument("--variants", default="2048x1,512x1,512x2,512x4")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    blas = _reexec_with_blas()
    print(f"BLAS: {blas}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    path: Path = _model(args.size)
    variants: list[Variant] = [
        (int(step), int(n)) for step, n in (v.split("x") for v in args.variants.split(","))
    ]
    engines = {
        v: Engine(
            path,
            max_batch=8,
            prompt_cache_entries=0,
            prefill_step_size=v[0],
            long_prefills=v[1],
        )
        for v in variants
    }
    for engine in engines.values():
        engine.start()
    first = next(iter(engines.values()))
    walls: dict[tuple[Variant, int], list[float]] = {}
    try:
        for engine in engines.values():  # warm-up: one short request each
            asyncio.run(round_of(engine, [prompts(engine, 64, 1, -1)[0]], 4))
        for streams in (int(s) for s in args.streams.split(",")):
            for r in range(args.rounds):
                batch = prompts(first, args.long, streams, r)
                for v, engine in engines.items():
                    ttfts, wall, generated = asyncio.run(round_of(engine, batch, args.tokens))
                    walls.setdefault((v, streams), []).append(wall)
                    print(
                        f"@{streams} step {v[0]:>4} x{v[1]} ({len(batch[0])} tok): TTFT "
                        + " / ".join(f"{t:.1f}" for t in ttfts)
                        + f" s (median {statistics.median(ttfts):.1f}); wall {wall:.1f} s, "
                        f"{generated / wall:.2f} tok/s",
                        flush=True,
                    )
    finally:
        for engine in engines.values():
            engine.close()
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
