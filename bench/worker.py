"""Benchmark: our worker against mlx_lm.server, mlx-openai-server and vllm-mlx on one model.

    python bench/worker.py [--size small] [--tokens 64] [--peers mlx_lm,mlx_openai,vllm_mlx]
    python bench/worker.py --long 2048 --long-only --peers mlx_lm,vllm_mlx
    python bench/worker.py --same-blas --peers mlx_lm,vllm_mlx --rounds 5

Measures, on the same factory-made model, in one run:
  - raw `stream_generate` (the ceiling for single-stream decode), once with the wheel's
    reference BLAS and once with OpenBLAS preloaded as our workers do on Linux;
  - per server: single-stream TTFT and decode tokens/s, aggregate tokens/s at 4 and 8
    concurrent streams, and cold vs warm TTFT for a second chat turn sharing a ~2k-token prefix.
Our worker runs as shipped (OpenBLAS on Linux when installed) and with MLXCTL_BLAS=off;
mlx_lm.server runs as shipped and with the same OpenBLAS preloaded, so engine overhead is
compared like for like. Prints a table and the ratios the issue sets as targets.
mlx-openai-server and vllm-mlx are each installed into their own virtual environment
(.bench/peers, .bench/vllm-mlx) on first use. `--long N` adds 1/2/4/8 distinct ~N-token
prompts sent together; `--long-only` runs just that, every server with OpenBLAS preloaded.
`--same-blas` runs only the OpenBLAS runs, every server and the raw reference up at once and
taken in turn for `--rounds` rounds (medians, and ratios per round), as `--long-only` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
PEER_VENV = BENCH_DIR / "peers"
LONG_STREAMS = (1, 2, 4, 8)
RAW_SAME_BLAS = "raw (OpenBLAS)"
# Peers that need their own virtual environment: kind -> (folder, console script, packages).
PEER_ENVS = {
    "mlx_openai": (PEER_VENV, "mlx-openai-server", ["mlx-openai-server"]),
    "vllm_mlx": (BENCH_DIR / "vllm-mlx", "vllm-mlx", ["vllm-mlx"]),
}


@dataclass
class Figures:
    name: str
    ttft: float = float("nan")
    decode_tps: float = float("nan")
    aggregate: dict[int, float] = field(default_factory=dict)
    cold_ttft: float = float("nan")
    warm_ttft: float = float("nan")
    note: str = ""
    # concurrent long-prompt requests -> (median TTFT s, aggregate tok/s), with --long
    long: dict[int, tuple[float, float]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(size: str, arch: str) -> Path:
    from mlxctl.factory import make_model

    path = BENCH_DIR / "models" / f"{arch}-{size}"
    if not (path / "config.json").exists():
        make_model(path, arch=arch, size=size)
    return path


def raw_rate(model_path: Path, tokens: int, prompt: str, name: str, env: dict[str, str]) -> Figures:
    """mlx-lm's stream_generate on the same prompt, in a child process with `env`: the median
    of three runs."""
    with RawChild(model_path, tokens, env) as raw:
        runs = [raw.once() for _ in range(3)]
    return from_rounds(name, runs)


class RawChild:
    """A child process holding the model for mlx-lm's stream_generate: each `once()` is one
    timed run of the bench prompt, so the reference can be taken in turn with the servers."""

    def __init__(self, model_path: Path, tokens: int, env: dict[str, str]) -> None:
        cmd = [sys.executable, __file__, "--raw", str(model_path), "--tokens", str(tokens)]
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def once(self) -> dict[str, float]:
        """{"ttft": s, "decode": tok/s} of one stream_generate run."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the raw stream_generate child exited ({self.proc.wait()})")
        data: dict[str, float] = json.loads(line)
        return data

    def __enter__(self) -> RawChild:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the child ends at end of input
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def raw_serve(model_path: Path, tokens: int, prompt: str) -> None:
    """The child's side of `RawChild`: load, warm up, then one timed run per input line."""
    from mlxctl.engine import mlxlm

    model, tokenizer = mlxlm.load(model_path)
    messages = [{"role": "user", "content": prompt}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    for _ in mlxlm.stream_generate(model, tokenizer, ids, max_tokens=4):
        pass  # warm-up
    for _ in sys.stdin:
        # Timed as the HTTP client times a stream: first token to last, (n - 1) intervals.
        start = time.perf_counter()
        stamps = [
            time.perf_counter()
            for _ in mlxlm.stream_generate(model, tokenizer, ids, max_tokens=tokens)
        ]
        decode = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        print(json.dumps({"decode": decode, "ttft": stamps[0] - start}), flush=True)


def start_server(
    kind: str, model_path: Path, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    python = sys.executable
    if kind == "mlxctl":
        cmd = [python, "-m", "mlxctl.cli.main", "worker", str(model_path), "--port", str(port)]
        cmd += ["--max-batch", "8"]
    elif kind == "mlx_lm":
        cmd = [python, "-m", "mlx_lm", "server", "--model", str(model_path), "--port", str(port)]
    elif kind == "mlx_openai":
        cmd = [
            peer_binary(kind),
            "launch",
            "--model-path",
            str(model_path),
            "--model-type",
            "lm",
            "--port",
            str(port),
            "--no-log-file",
            "--max-concurrency",
            "8",
        ]
    elif kind == "vllm_mlx":
        cmd = [peer_binary(kind), "serve", str(model_path), "--port", str(port)]
        cmd += ["--host", "127.0.0.1", "--continuous-batching", "--max-num-seqs", "8"]
    else:
        raise ValueError(kind)
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=BENCH_DIR, env=env)


def wait_ready(
    port: int,
    proc: subprocess.Popen[bytes],
    timeout: float = 300,
    path: str = "/v1/models",
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> None:
    """Wait until the server on `port` answers `path` as `ready` says (its exit is an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if ready(httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError("server did not become ready")


async def one_stream(
    client: httpx.AsyncClient, url: str, model: str, messages: list[dict[str, str]], tokens: int
) -> tuple[float, float, int, str]:
    """(ttft, decode seconds after the first token, tokens, text) of one streamed chat.

    Tokens are the server's `usage.completion_tokens` when it reports them (a stream may
    hold a token's text back and send it with the next), else the content chunks."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    tokens_used = 0  # the server's completion_tokens: a chunk may carry several tokens
    text = []
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            tokens_used = (chunk.get("usage") or {}).get("completion_tokens") or tokens_used
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                piece = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                piece += delta.get("reasoning") or ""
                if piece:
                    now = time.perf_counter()
                    if count == 0:
                        first = now
                    last = now
                    count += 1
                    text.append(piece)
    return first - start, last - first, tokens_used or count, "".join(text)


async def measure_round(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, prompt: str, prefix: str, tag: str
) -> dict[str, float]:
    """One round on one server: a single stream (TTFT, decode tok/s), 4 and 8 streams at
    once (aggregate tok/s), and a second chat turn over a ~2k-token prefix new to this
    round (`tag`), warm (the first turn cached it) and cold (a prefix never seen)."""
    figures = await single_stream(client, url, model, tokens, prompt)
    return figures | await measure_rest(client, url, model, tokens, prompt, prefix, tag)


async def single_stream(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, prompt: str
) -> dict[str, float]:
    """TTFT and decode tok/s of the bench prompt alone."""
    ttft, decode, count, _ = await one_stream(
        client, url, model, [{"role": "user", "content": prompt}], tokens
    )
    return {"ttft": ttft, "decode": (count - 1) / decode if decode > 0 else float("nan")}


async def measure_rest(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, prompt: str, prefix: str, tag: str
) -> dict[str, float]:
    """The figures of a round after the single stream (see `measure_round`)."""
    figures = {}
    for streams in (4, 8):
        start = time.perf_counter()
        results = await asyncio.gather(
            *[
                one_stream(
                    client,
                    url,
                    model,
                    [{"role": "user", "content": f"{prompt} (stream {i})"}],
                    tokens,
                )
                for i in range(streams)
            ]
        )
        figures[f"agg{streams}"] = sum(r[2] for r in results) / (time.perf_counter() - start)
    turn1 = [
        {"role": "system", "content": f"{tag}. {prefix}"},
        {"role": "user", "content": "Summarise."},
    ]
    _, _, _, reply = await one_stream(client, url, model, turn1, 8)
    turn2 = [
        *turn1,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And now in one line?"},
    ]
    figures["warm"], _, _, _ = await one_stream(client, url, model, turn2, 8)
    cold_prefix = [{"role": "system", "content": f"Other {tag}. {prefix}"}, *turn2[1:]]
    figures["cold"], _, _, _ = await one_stream(client, url, model, cold_prefix, 8)
    return figures


def from_rounds(name: str, rounds: Sequence[dict[str, float]]) -> Figures:
    """A server's figures: the median of each over its rounds."""

    def median(key: str) -> float:
        values = [r[key] for r in rounds if key in r and r[key] == r[key]]
        return statistics.median(values) if values else float("nan")

    fig = Figures(name, ttft=median("ttft"), decode_tps=median("decode"))
    fig.aggregate = {4: median("agg4"), 8: median("agg8")}
    fig.cold_ttft, fig.warm_ttft = median("cold"), median("warm")
    return fig


async def measure_server(
    name: str,
    port: int,
    model: str,
    tokens: int,
    prompt: str,
    prefix: str,
    long: int = 0,
    rounds: int = 3,
) -> Figures:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await one_stream(client, url, model, [{"role": "user", "content": "warm up"}], 4)
        samples = [
            await measure_round(client, url, model, tokens, prompt, prefix, f"Round {i}")
            for i in range(rounds)
        ]
        fig = from_rounds(name, samples)
        if long:
            await measure_long(client, url, model, tokens, long, fig)
    return fig


def long_prompt(long: int, streams: int, i: int) -> str:
    """A distinct ~`long`-token prompt: its first words differ, so no server reuses a prefix."""
    return " ".join(
        f"Note {streams}.{i}.{k}: the valve {k} opens at dawn." for k in range(long // 22)
    )


async def long_level(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, long: int, streams: int
) -> tuple[float, float]:
    """(median TTFT s, aggregate tok/s) of `streams` distinct long prompts sent together."""
    bodies = [long_prompt(long, streams, i) for i in range(streams)]
    start = time.perf_counter()
    results = await asyncio.gather(
        *[one_stream(client, url, model, [{"role": "user", "content": b}], tokens) for b in bodies]
    )
    wall = time.perf_counter() - start
    return statistics.median(r[0] for r in results), sum(r[2] for r in results) / wall


async def measure_long(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, long: int, fig: Figures
) -> None:
    """TTFT and aggregate tok/s of 1, 2, 4 and 8 long prompts sent together (each its own)."""
    for streams in LONG_STREAMS:
        fig.long[streams] = await long_level(client, url, model, tokens, long, streams)


async def measure_long_interleaved(
    served: list[tuple[str, int, str]], tokens: int, long: int
) -> list[Figures]:
    """The long sweep on servers all up at once, taken in turn at each concurrency so a
    change in the machine's load hits every server alike."""
    figures = [Figures(name) for name, _, _ in served]
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        urls = [f"http://127.0.0.1:{port}/v1/chat/completions" for _, port, _ in served]
        for url, (_, _, model) in zip(urls, served, strict=True):
            await one_stream(client, url, model, [{"role": "user", "content": "warm up"}], 4)
        for streams in LONG_STREAMS:
            for fig, url, (name, _, model) in zip(figures, urls, served, strict=True):
                print(f"  {name}: {streams} at once ...", flush=True)
                fig.long[streams] = await long_level(client, url, model, tokens, long, streams)
    return figures


def peer_binary(kind: str) -> str:
    venv, script, _ = PEER_ENVS[kind]
    return str(venv / "bin" / script)


def ensure_peer_env(kind: str) -> bool:
    """Install a peer into its own virtual environment on first use; False if it cannot be."""
    venv, script, packages = PEER_ENVS[kind]
    if (venv / "bin" / script).exists():
        return True
    print(f"installing {' '.join(packages)} into {venv} (one time) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pkgs = ["mlx[cpu]" if sys.platform == "linux" else "mlx", *packages]
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pkgs])
    return done.returncode == 0


@contextlib.contextmanager
def serving(
    kind: str, name: str, env: dict[str, str], model_path: Path
) -> Iterator[tuple[int, str]]:
    """A started server: (port, the model name it serves); stopped and cleaned up after."""
    port = free_port()
    log = BENCH_DIR / f"{name}.log"
    # An empty home per run: no server finds a prompt cache on disk from an earlier run.
    home = Path(tempfile.mkdtemp(prefix="home-", dir=BENCH_DIR))
    env = {**env, "HOME": str(home), "MLXCTL_HOME": str(home / "mlxctl")}
    proc = start_server(kind, model_path, port, log, env)
    try:
        try:
            wait_ready(port, proc)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e} (see {log})") from e
        model = str(model_path)  # mlx_lm.server serves its --model under its path
        if kind != "mlx_lm":
            model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["id"]
        yield port, model
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def run_server(
    kind: str,
    name: str,
    env: dict[str, str],
    model_path: Path,
    args: argparse.Namespace,
    prompt: str,
    prefix: str,
) -> Figures:
    try:
        with serving(kind, name, env, model_path) as (port, model):
            figures = measure_server(
                name, port, model, args.tokens, prompt, prefix, args.long, args.rounds
            )
            return asyncio.run(figures)
    except Exception as e:  # a peer that cannot run here is reported, not fatal
        return Figures(name, note=f"failed: {e}")


def start_all(
    stack: contextlib.ExitStack,
    runs: list[tuple[str, str, dict[str, str]]],
    model_path: Path,
) -> tuple[list[tuple[str, int, str]], list[Figures]]:
    """Every server up at once under `stack`: (name, port, model) of those that started, and
    a failed row for each that could not."""
    served: list[tuple[str, int, str]] = []
    failed: list[Figures] = []
    for kind, name, env in runs:
        try:
            port, model = stack.enter_context(serving(kind, name, env, model_path))
            served.append((name, port, model))
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            failed.append(Figures(name, note=f"failed: {e}"))
    return served, failed


def run_long_only(
    runs: list[tuple[str, str, dict[str, str]]], model_path: Path, args: argparse.Namespace
) -> list[Figures]:
    """Every server up at once, the long sweep interleaved across them."""
    with contextlib.ExitStack() as stack:
        served, failed = start_all(stack, runs, model_path)
        return asyncio.run(measure_long_interleaved(served, args.tokens, args.long)) + failed


def run_interleaved(
    runs: list[tuple[str, str, dict[str, str]]],
    model_path: Path,
    args: argparse.Namespace,
    prompt: str,
    prefix: str,
    raw_env: dict[str, str],
) -> tuple[list[Figures], dict[str, list[dict[str, float]]]]:
    """Every server and the raw stream_generate child up at once, taken in turn each round
    (the order rotates), so a change in the machine's load hits all alike. Rows are
    medians over rounds; the per-round samples come back too, by name, for ratios."""
    with contextlib.ExitStack() as stack:
        served, failed = start_all(stack, runs, model_path)
        raw = stack.enter_context(RawChild(model_path, args.tokens, raw_env))
        samples = asyncio.run(
            measure_interleaved(served, raw, args.rounds, args.tokens, prompt, prefix)
        )
    rows = [from_rounds(name, samples[name]) for name in samples]
    return rows + failed, samples


async def measure_interleaved(
    served: list[tuple[str, int, str]],
    raw: RawChild,
    rounds: int,
    tokens: int,
    prompt: str,
    prefix: str,
) -> dict[str, list[dict[str, float]]]:
    """Per name, one sample of each figure per round (`measure_round`, or one raw run)."""
    samples: dict[str, list[dict[str, float]]] = {RAW_SAME_BLAS: []}
    samples |= {name: [] for name, _, _ in served}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        urls = {
            name: (f"http://127.0.0.1:{port}/v1/chat/completions", model)
            for name, port, model in served
        }
        for url, model in urls.values():
            await one_stream(client, url, model, [{"role": "user", "content": "warm up"}], 4)
        names = list(samples)
        for i in range(rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            print(f"  round {i + 1}/{rounds}: {', '.join(order)}", flush=True)
            # Single streams back to back first, so decode ratios come from the same seconds.
            for name in order:
                if name == RAW_SAME_BLAS:
                    samples[name].append(raw.once())
                else:
                    url, model = urls[name]
                    samples[name].append(await single_stream(client, url, model, tokens, prompt))
            for name in order:
                if name != RAW_SAME_BLAS:
                    url, model = urls[name]
                    rest = await measure_rest(
                        client, url, model, tokens, prompt, prefix, f"Round {i}"
                    )
                    samples[name][-1] |= rest
    return samples


def round_ratios(
    ours: list[dict[str, float]], other: list[dict[str, float]], keys: Sequence[str]
) -> dict[str, tuple[float, float, float]]:
    """Per figure, (median, min, max) over rounds of ours/other (> 1: ours is higher)."""
    out = {}
    for key in keys:
        ratios = [
            a[key] / b[key] for a, b in zip(ours, other, strict=True) if key in a and key in b
        ]
        if ratios:
            out[key] = (statistics.median(ratios), min(ratios), max(ratios))
    return out


def compare_rounds(samples: dict[str, list[dict[str, float]]], ours: str) -> None:
    """Ratios from the same rounds: ours to the raw reference and to each peer."""
    mine = samples[ours]
    # Higher is better for rates; for times the peer's over ours, so > 1 still means ours wins.
    rates, times = ("decode", "agg4", "agg8"), ("ttft", "cold", "warm")

    def line(other: list[dict[str, float]]) -> str:
        cells = round_ratios(mine, other, rates)
        cells |= round_ratios(other, mine, times)
        return ", ".join(
            f"{key} {m:.2f}x ({lo:.2f}-{hi:.2f})" for key, (m, lo, hi) in cells.items()
        )

    print(f"\n{ours}, ratios per round, median (min-max), > 1: ours ahead:")
    raw = round_ratios(mine, samples[RAW_SAME_BLAS], ("decode",))["decode"]
    spread = f"{raw[0]:.3f}x ({raw[1]:.3f}-{raw[2]:.3f})"
    print(f"  single-stream decode vs {RAW_SAME_BLAS}: {spread} (target >= 0.97)")
    for name, other in samples.items():
        if name not in (ours, RAW_SAME_BLAS) and other:
            print(f"  vs {name}: {line(other)}")


def table(rows: Sequence[Figures]) -> str:
    head = f"{'server':26} {'TTFT ms':>8} {'decode t/s':>10} {'agg@4':>8} {'agg@8':>8}"
    head += f" {'cold ms':>8} {'warm ms':>8}  note"
    lines = [head, "-" * len(head)]
    for f in rows:
        lines.append(
            f"{f.name:26} {f.ttft * 1000:8.0f} {f.decode_tps:10.1f} "
            f"{f.aggregate.get(4, float('nan')):8.1f} {f.aggregate.get(8, float('nan')):8.1f} "
            f"{f.cold_ttft * 1000:8.0f} {f.warm_ttft * 1000:8.0f}  {f.note}"
        )
    return "\n".join(lines)


def environments() -> tuple[dict[str, str], dict[str, str], str]:
    """(reference BLAS env, OpenBLAS env, library name) for child processes."""
    from mlxctl.engine.blas import MARKER, preload_env

    hf = BENCH_DIR / "hf"  # mlx_lm.server's /v1/models needs an HF cache folder to exist
    hf.mkdir(exist_ok=True)
    base = {**os.environ, "HF_HUB_CACHE": str(hf)}
    reference = {**base, "MLXCTL_BLAS": "off", MARKER: "none"}
    fast = preload_env(base, "auto") or base
    return reference, fast, fast.get(MARKER, "none")


def compare(ours: Figures, raw: Figures, peers: Sequence[Figures]) -> None:
    print(f"\n{ours.name}:")
    print(
        f"  single-stream decode vs {raw.name}: {ours.decode_tps / raw.decode_tps:.2f}x (>= 0.97)"
    )
    agg = ours.aggregate.get(8, 0) / ours.decode_tps
    print(f"  aggregate@8 vs single stream: {agg:.2f}x (target >= 4)")
    print(f"  warm vs cold second-turn TTFT: {ours.warm_ttft / ours.cold_ttft:.3f}x (<= 0.2)")
    for peer in peers:
        if peer.note:
            continue
        print(
            f"  vs {peer.name}: TTFT {peer.ttft / ours.ttft:.2f}x faster, decode "
            f"{ours.decode_tps / peer.decode_tps:.2f}x, agg@4 "
            f"{ours.aggregate.get(4, 0) / max(peer.aggregate.get(4, 0), 1e-9):.2f}x, agg@8 "
            f"{ours.aggregate.get(8, 0) / max(peer.aggregate.get(8, 0), 1e-9):.2f}x, warm TTFT "
            f"{peer.warm_ttft / ours.warm_ttft:.2f}x faster"
        )


def long_table(long: int, rows: Sequence[Figures], ours: Figures | None) -> None:
    """The long-prompt sweep per server, and our ratios to each peer (> 1: we are faster)."""
    print(f"\n~{long}-token prompts sent together: median TTFT s / aggregate tok/s")
    for r in rows:
        if r.long or r.note:
            cells = "  ".join(f"@{n}: {t:6.2f} s {a:6.1f}" for n, (t, a) in r.long.items())
            print(f"  {r.name:26} {cells}  {r.note}")
    if ours is None or not ours.long:
        return
    for r in rows:
        if r is ours or not r.long:
            continue
        cells = "  ".join(
            f"@{n}: TTFT {r.long[n][0] / t:.2f}x agg {a / r.long[n][1]:.2f}x"
            for n, (t, a) in ours.long.items()
            if n in r.long
        )
        print(f"  vs {r.name:23} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--arch", default="qwen2")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--peers", default="mlx_lm,mlx_openai,vllm_mlx")
    parser.add_argument(
        "--all", action="store_true", help="Also run our worker with the reference BLAS."
    )
    parser.add_argument(
        "--long", type=int, default=0, help="Also 1/2/4/8 concurrent prompts of ~N tokens."
    )
    parser.add_argument(
        "--long-only",
        action="store_true",
        help="Only the --long sweep (default 2048 tokens), every server with OpenBLAS.",
    )
    parser.add_argument(
        "--same-blas",
        action="store_true",
        help="Only the runs with OpenBLAS preloaded (no peer as shipped, no reference BLAS), "
        "all servers up at once and interleaved in rounds.",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="Rounds per server (medians are reported)."
    )
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)  # child: raw rate only
    args = parser.parse_args()
    prompt = "Write a short story about a lighthouse keeper and a cat."
    if args.raw:
        raw_serve(args.raw, args.tokens, prompt)
        return
    BENCH_DIR.mkdir(exist_ok=True)
    model_path = build_model(args.size, args.arch)
    prefix = " ".join(
        f"Rule {i}: answer politely and cite the manual section {i}." for i in range(90)
    )
    reference, fast, library = environments()
    if args.long_only:
        args.long = args.long or 2048
    print(f"model: factory {args.arch}/{args.size} at {model_path}; OpenBLAS: {library}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    peers = [p for p in args.peers.split(",") if p]
    runs: list[tuple[str, str, dict[str, str]]] = []
    if library != "none":
        runs.append(("mlxctl", "mlxctl (OpenBLAS)", fast))
    if args.all or library == "none":
        runs.append(("mlxctl", "mlxctl (reference BLAS)", reference))
    same_blas = args.long_only or args.same_blas
    for peer in peers:
        if not same_blas or library == "none":
            runs.append((peer, f"{peer} (as shipped)", reference))
        if library != "none":
            runs.append((peer, f"{peer} (OpenBLAS)", fast))
    rows = []
    interleave = args.same_blas and not args.long_only and library != "none"
    if not args.long_only and not interleave:
        if not same_blas or library == "none":
            ref = raw_rate(model_path, args.tokens, prompt, "raw (reference BLAS)", reference)
            rows.append(ref)
        if library != "none":
            rows.append(raw_rate(model_path, args.tokens, prompt, "raw (OpenBLAS)", fast))
    installed = []
    for kind, name, env in runs:
        if kind in PEER_ENVS and not ensure_peer_env(kind):
            rows.append(Figures(name, note="could not be installed"))
        else:
            installed.append((kind, name, env))
    samples: dict[str, list[dict[str, float]]] = {}
    if args.long_only:
        rows += run_long_only(installed, model_path, args)
    elif interleave:
        print(f"all servers up, {args.rounds} interleaved rounds ...", flush=True)
        served_rows, samples = run_interleaved(installed, model_path, args, prompt, prefix, fast)
        rows += served_rows
    else:
        for kind, name, env in installed:
            print(f"measuring {name} ...", flush=True)
            rows.append(run_server(kind, name, env, model_path, args, prompt, prefix))
    print()
    if not args.long_only:
        print(table(rows))
    by_name = {r.name: r for r in rows}
    served = [r for r in rows if not r.name.startswith(("raw", "mlxctl"))]
    if args.long:
        long_table(args.long, rows, by_name.get("mlxctl (OpenBLAS)"))
    if samples and "mlxctl (OpenBLAS)" in samples:
        compare_rounds(samples, "mlxctl (OpenBLAS)")
    for blas in ("OpenBLAS", "reference BLAS"):
        ours = by_name.get(f"mlxctl ({blas})")
        if ours is not None and not ours.note and not args.long_only:
            compare(ours, by_name[f"raw ({blas})"], served)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"\nplatform: {sys.platform}, cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
