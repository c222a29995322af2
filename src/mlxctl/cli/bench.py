"""`mlxctl bench MODEL`: how fast a model answers through the daemon, measured end to end.

Loads the model (timed), sends one short warm-up, then `--runs` rounds of
`--concurrency` simultaneous chats. Each round's prompts differ in their first
words so the prompt cache cannot flatter prefill. Per chat: time to first token
(seen by the client), prompt-eval and decode rates (the daemon's own durations);
per round: generated tokens per second of wall time across all streams.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import click

from mlxctl.cli.output import console, print_json, print_table
from mlxctl.client import DaemonClient
from mlxctl.client.chat import Reply, chat

PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle, "
    "and describe the sea, the weather and every room of the lighthouse."
)


@click.command()
@click.argument("model")
@click.option("--prompt", default=PROMPT, show_default="a story request", help="The user message.")
@click.option("--max-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option("--runs", type=click.IntRange(1), default=3, show_default=True)
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=1, show_default=True, help="Streams."
)
@click.option("--cold", is_flag=True, help="Unload the model first, so the load is timed cold.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench(
    model: str,
    prompt: str,
    max_tokens: int,
    runs: int,
    concurrency: int,
    cold: bool,
    as_json: bool,
) -> None:
    """Measure load time, time to first token, prompt and decode rates of MODEL.

    Greedy decoding (temperature 0); a reply may end before --max-tokens at EOS, and
    the token counts in the table say so.
    """
    with DaemonClient.from_settings() as client:
        if cold:
            client.unload(model)
        started = time.perf_counter()
        loaded = client.load(model)
        load_s = time.perf_counter() - started
        name = str(loaded.get("model", model))
        _ask(client, name, "Hi", 4)  # warm-up: first-request costs stay out of the figures
        rounds = [_round(client, name, prompt, max_tokens, concurrency, i) for i in range(runs)]
    report = _report(name, load_s, concurrency, rounds)
    report["cold"] = cold
    if as_json:
        print_json(report)
        return
    _print(report)


def _ask(client: DaemonClient, model: str, text: str, max_tokens: int) -> Reply:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "options": {"temperature": 0, "num_predict": max_tokens},
    }
    return chat(client, body)


def _round(
    client: DaemonClient, model: str, prompt: str, max_tokens: int, streams: int, index: int
) -> dict[str, Any]:
    replies: list[Reply | BaseException] = [RuntimeError("not run")] * streams

    def one(slot: int) -> None:
        text = f"[round {index + 1}, stream {slot + 1}] {prompt}"
        try:
            replies[slot] = _ask(client, model, text, max_tokens)
        except BaseException as e:  # reported in the table, the other streams go on
            replies[slot] = e

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(slot,)) for slot in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = [r for r in replies if isinstance(r, Reply)]
    failed = [str(r) for r in replies if not isinstance(r, Reply)]
    generated = sum(int(r.stats.get("eval_count") or 0) for r in done)
    return {
        "ttft_ms": [1000 * r.first_token_s for r in done if r.first_token_s is not None],
        "prompt_tps": _rates(done, "prompt_eval_count", "prompt_eval_duration"),
        "decode_tps": _rates(done, "eval_count", "eval_duration"),
        "prompt_tokens": [int(r.stats.get("prompt_eval_count") or 0) for r in done],
        "tokens": [int(r.stats.get("eval_count") or 0) for r in done],
        "aggregate_tps": generated / wall if wall > 0 else 0.0,
        "errors": failed,
    }


def _rates(replies: list[Reply], count: str, duration: str) -> list[float]:
    return [v for r in replies if (v := r.rate(count, duration)) is not None]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _report(
    model: str, load_s: float, concurrency: int, rounds: list[dict[str, Any]]
) -> dict[str, Any]:
    def pooled(key: str) -> list[float]:
        return [v for r in rounds for v in r[key]]

    return {
        "model": model,
        "load_s": round(load_s, 3),
        "concurrency": concurrency,
        "rounds": rounds,
        "median": {
            "ttft_ms": _median(pooled("ttft_ms")),
            "prompt_tps": _median(pooled("prompt_tps")),
            "decode_tps": _median(pooled("decode_tps")),
            "aggregate_tps": _median([r["aggregate_tps"] for r in rounds]),
        },
        "errors": sum(len(r["errors"]) for r in rounds),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _print(report: dict[str, Any]) -> None:
    how = "cold load" if report["cold"] else "ready (--cold times a fresh load)"
    console.print(
        f"{report['model']}: {how} in {report['load_s']:.2f} s; "
        f"{report['concurrency']} stream(s) per round"
    )
    rows: list[tuple[object, ...]] = []
    for i, r in enumerate(report["rounds"], 1):
        rows.append(
            (
                i,
                _fmt(_median(r["ttft_ms"])),
                _fmt(_median(r["prompt_tps"])),
                _fmt(_median(r["decode_tps"])),
                _fmt(r["aggregate_tps"]),
                "/".join(str(t) for t in r["tokens"]) or "-",
                len(r["errors"]) or "",
            )
        )
    m = report["median"]
    rows.append(
        (
            "median",
            _fmt(m["ttft_ms"]),
            _fmt(m["prompt_tps"]),
            _fmt(m["decode_tps"]),
            _fmt(m["aggregate_tps"]),
            "",
            "",
        )
    )
    columns = ["ROUND", "TTFT ms", "PROMPT tok/s", "DECODE tok/s", "TOTAL tok/s", "TOKENS", "ERR"]
    print_table(columns, rows)
    for r in report["rounds"]:
        for error in r["errors"]:
            console.print(f"[red]error:[/red] {error}")
