"""Benchmark: one image to a vision model, our worker against mlx_vlm.server (mlx-vlm's own).

    python bench/vision.py [--size small] [--requests 8] [--tokens 16]

On the factory `small` Qwen2.5-VL model (same files for both servers, same venv), each
server gets a warm-up and then `--requests` streamed chats, one after another, each with
a different 200x150 PNG (so no image or prompt cache helps) and the same question, greedy,
`--tokens` generated tokens. Reports the median TTFT (request sent → first content byte)
and images per second (requests completed per wall second), then our ratios to the peer.
Our worker runs as shipped (OpenBLAS preloaded on Linux when installed); mlx_vlm.server
runs with the same OpenBLAS preloaded, so the engines compare like for like.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mlxctl.engine.blas import preload_env
from mlxctl.supervision.process import free_port
from worker import wait_ready  # bench/worker.py: this script runs from bench/

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"


def build_model(size: str) -> Path:
    from mlxctl.factory.vision import make_vision_model

    path = BENCH_DIR / "models" / f"qwen2_5_vl-{size}"
    if not (path / "config.json").exists():
        make_vision_model(path, size=size)
    return path


def picture(seed: int) -> str:
    from PIL import Image

    pixels = bytes(
        (x * 7 + y * 3 + seed * 31) % 256 for y in range(150) for x in range(200) for _ in range(3)
    )
    out = io.BytesIO()
    Image.frombytes("RGB", (200, 150), pixels).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def start(kind: str, model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    python = sys.executable
    env = dict(os.environ)
    if kind == "mlxctl":
        cmd = [python, "-m", "mlxctl.cli.main", "worker", str(model), "--port", str(port)]
    else:
        cmd = [python, "-m", "mlx_vlm.server", "--model", str(model), "--port", str(port)]
        cmd += ["--host", "127.0.0.1"]
        env = preload_env(env, "auto") or env
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def _healthy(answer: httpx.Response) -> bool:
    # Ours answers "loading" until the model is in; mlx_vlm.server says "healthy".
    return answer.status_code == 200 and answer.json().get("status") in ("ok", "healthy")


def one(client: httpx.Client, url: str, model: str, image: str, tokens: int) -> float:
    """The TTFT of one streamed chat with `image`; reads the stream to its end."""
    content = [
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "text", "text": "Describe this picture."},
    ]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
    }
    start_at = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    first = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream carried no content")
    return first - start_at


def measure(kind: str, model: Path, requests: int, tokens: int) -> tuple[float, float]:
    """(median TTFT s, images per second) of one server."""
    port = free_port()
    log = BENCH_DIR / f"vision-{kind}.log"
    proc = start(kind, model, port, log)
    try:
        wait_ready(port, proc, path="/health", ready=_healthy)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        name = model.name if kind == "mlxctl" else str(model)
        with httpx.Client(timeout=600) as client:
            one(client, url, name, picture(999), 4)  # warm-up: load, compile
            began = time.perf_counter()
            ttfts = [one(client, url, name, picture(i), tokens) for i in range(requests)]
            wall = time.perf_counter() - began
        return statistics.median(ttfts), requests / wall
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    model = build_model(args.size)
    rows = {
        kind: measure(kind, model, args.requests, args.tokens) for kind in ("mlxctl", "mlx_vlm")
    }
    print(f"{'server':<16}{'TTFT ms':>10}{'images/s':>10}")
    for kind, (ttft, rate) in rows.items():
        print(f"{kind:<16}{ttft * 1000:>10.0f}{rate:>10.2f}")
    (ours_ttft, ours_rate), (peer_ttft, peer_rate) = rows["mlxctl"], rows["mlx_vlm"]
    print(f"TTFT ratio (mlx_vlm.server / mlxctl): {peer_ttft / ours_ttft:.2f}x")
    print(f"images/s ratio (mlxctl / mlx_vlm.server): {ours_rate / peer_rate:.2f}x")


if __name__ == "__main__":
    main()
