"""Benchmark: speculative decoding, constrained decoding and the single-stream fast path.

    python bench/speculative.py [--part single,json,spec] [--tokens 96] [--rounds 3]

One process, OpenBLAS preloaded (it re-runs itself so, as workers do); every figure is a
ratio to its reference measured in the same run, runs interleaved:
  - single: our engine alone (the fast path, engine/solo.py) and on the batch path, vs raw
    mlx-lm `stream_generate`, greedy decode tokens/s on the factory `small` model;
  - json: `response_format` json_schema (llguidance mask, overlapped with the forward pass)
    vs unconstrained, same prompt and model, decode tokens/s, alone and --json-streams at once;
  - spec: the factory's trained target/draft pair (`mlxctl dev train-pair`, factory/train.py;
    trained here first if missing, minutes): the target alone vs with its draft model vs
    with prompt lookup, on held-out "rewrite this code with one change" prompts (the answer
    repeats the context) and on free generation; tokens/s and acceptance rates. Then the
    no-help case: free generation on a target that does not copy (--nocopy-pair, the
    earlier briefly trained pair), target alone vs prompt lookup, --nocopy-rounds rounds.
Single and json: decode tokens/s = (tokens - 1) / (last token time - first token time),
and this process's CPU milliseconds per token over the same span: on a shared, loaded
machine the wall clock swings with other jobs, the CPU an engine spends per token does not.
Speculative: tokens / (last token time - submission), over all answers (they end at EOS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
FREE_PROMPTS = (
    "Write a new Python module that parses command line options.",
    "Explain how a hash table works, with an example in Python.",
    "Write a class for a bank account with deposits and withdrawals.",
    "Write a function that merges two sorted lists.",
)
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "notes"],
}


def _reexec_with_blas() -> str:
    from mlxctl.engine.blas import MARKER, preload_env

    env = preload_env(os.environ, "auto")
    if env is not None and env.get("LD_PRELOAD") != os.environ.get("LD_PRELOAD"):
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    return os.environ.get(MARKER, "none")


def _model(size: str) -> Path:
    from mlxctl.factory import make_model

    path = BENCH_DIR / "models" / f"qwen2-{size}"
    if not (path / "config.json").exists():
        make_model(path, size=size)
    return path


Stamp = tuple[float, float]  # (wall clock, this process's CPU time)
Figure = tuple[float, float]  # (decode tokens/s, CPU milliseconds per token)


def _stamp() -> Stamp:
    return time.perf_counter(), time.process_time()


def _figure(stamps: list[Stamp]) -> Figure:
    """Wall-clock decode rate, and CPU per token: what the engine costs, whatever the load."""
    if len(stamps) < 2:
        return float("nan"), float("nan")
    n = len(stamps) - 1
    (wall0, cpu0), (wall1, cpu1) = stamps[0], stamps[-1]
    return n / (wall1 - wall0), 1000 * (cpu1 - cpu0) / n


def _engine_run(engine: Any, request: Any) -> tuple[Figure, list[int], Stamp]:
    """One request on a started Engine: its figure, its tokens, and its (wall, CPU) seconds
    from submission to the last token (prefill and any draft prefill included)."""
    from mlxctl.engine.types import TokenEvent

    async def go() -> tuple[Figure, list[int], Stamp]:
        stamps: list[Stamp] = []
        tokens: list[int] = []
        wall, cpu = _stamp()
        async for event in engine.generate(request):
            if isinstance(event, TokenEvent):
                stamps.append(_stamp())
                tokens.append(event.token)
        return _figure(stamps), tokens, (stamps[-1][0] - wall, stamps[-1][1] - cpu)

    return asyncio.run(go())


def _engine_batch(engine: Any, requests: list[Any]) -> Figure:
    """Several requests at once on a started Engine: aggregate decode tokens/s from the first
    token of any to the last, and CPU per token over the same span."""
    from mlxctl.engine.types import TokenEvent

    async def one(request: Any, stamps: list[Stamp]) -> None:
        async for event in engine.generate(request):
            if isinstance(event, TokenEvent):
                stamps.append(_stamp())

    async def go() -> Figure:
        stamps: list[Stamp] = []
        await asyncio.gather(*(one(r, stamps) for r in requests))
        return _figure(sorted(stamps))

    return asyncio.run(go())


def _raw_run(model: Any, tokenizer: Any, prompt: list[int], tokens: int) -> Figure:
    from mlxctl.engine import mlxlm

    generated = mlxlm.stream_generate(model, tokenizer, prompt, max_tokens=tokens)
    return _figure([_stamp() for _ in generated])


def _interleave(rounds: int, runs: dict[str, Callable[[], Figure]]) -> dict[str, Figure]:
    """Medians of `rounds` runs each, taken in turn so load changes hit all alike."""
    for run in runs.values():
        run()  # warm-up
    seen: dict[str, list[Figure]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            seen[name].append(run())
    return {
        name: (statistics.median(f[0] for f in got), statistics.median(f[1] for f in got))
        for name, got in seen.items()
    }


def _table(got: dict[str, Figure], reference: str) -> None:
    rate0, cpu0 = got[reference]
    print(f"| run | decode tok/s | vs {reference} | CPU ms/token | speed by CPU |")
    print("| --- | --- | --- | --- | --- |")
    for name, (rate, cpu) in got.items():
        print(f"| {name} | {rate:.1f} | {rate / rate0:.3f}× | {cpu:.1f} | {cpu0 / cpu:.3f}× |")


def _chat(tokenizer: Any, text: str) -> list[int]:
    messages = [{"role": "user", "content": text}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))


def single(args: argparse.Namespace) -> None:
    from mlxctl.engine import mlxlm
    from mlxctl.engine.generator import Engine
    from mlxctl.engine.types import GenerationRequest, SamplingParams

    path = _model("small")
    fast, batch = Engine(path, fast_path=True), Engine(path, fast_path=False)
    fast.start()
    batch.start()
    model, tokenizer = mlxlm.load(path)
    prompt = _chat(tokenizer, "Tell me a long story about the sea.")
    greedy = GenerationRequest(prompt, args.tokens, SamplingParams(temperature=0.0))
    got = _interleave(
        args.rounds,
        {
            "stream_generate": lambda: _raw_run(model, tokenizer, prompt, args.tokens),
            "engine, fast path": lambda: _engine_run(fast, greedy)[0],
            "engine, batch path": lambda: _engine_run(batch, greedy)[0],
        },
    )
    fast.close()
    batch.close()
    print(f"\n## Single stream: factory small (qwen2), greedy, {args.tokens} tokens")
    _table(got, "stream_generate")


def json_schema(args: argparse.Namespace) -> None:
    from mlxctl.engine.generator import Engine
    from mlxctl.engine.types import GenerationRequest, SamplingParams
    from mlxctl.worker.structured import JsonGrammars

    path = _model("small")
    engine = Engine(path)
    engine.start()
    grammars = JsonGrammars(engine.tokenizer, engine.eos_token_ids)
    factory = grammars.factory({"schema": SCHEMA})
    prompt = _chat(engine.tokenizer, "Describe the sea as JSON.")
    # Sampled at temperature 1 so a random model's JSON strings run long (greedy closes them).
    params = SamplingParams(temperature=1.0, seed=3)

    def constrained() -> GenerationRequest:
        return GenerationRequest(prompt, args.tokens, params, logits_processors=[factory])

    lengths: list[int] = []

    def run_constrained() -> Figure:
        figure, tokens, _ = _engine_run(engine, constrained())
        lengths.append(len(tokens))
        return figure

    free = GenerationRequest(prompt, args.tokens, params)
    got = _interleave(
        args.rounds,
        {"unconstrained": lambda: _engine_run(engine, free)[0], "json_schema": run_constrained},
    )
    # The same in a batch: each request its own seed, so the rows differ.
    n = args.json_streams
    seeded = [replace(params, seed=3 + i) for i in range(n)]
    batched = _interleave(
        args.rounds,
        {
            f"unconstrained ×{n}": lambda: _engine_batch(
                engine, [GenerationRequest(prompt, args.tokens, p) for p in seeded]
            ),
            f"json_schema ×{n}": lambda: _engine_batch(
                engine,
                [
                    GenerationRequest(prompt, args.tokens, p, logits_processors=[factory])
                    for p in seeded
                ],
            ),
        },
    )
    engine.close()
    print("\n## Structured output: factory small (qwen2), json_schema vs unconstrained")
    print(f"(json_schema answers: {min(lengths)}–{max(lengths)} tokens)")
    _table(got, "unconstrained")
    print(f"\n{n} requests at once (aggregate decode):")
    _table(batched, f"unconstrained ×{n}")


def speculative(args: argparse.Namespace) -> None:
    from mlxctl.engine.generator import Engine
    from mlxctl.engine.speculative import Speculation
    from mlxctl.factory.train import TrainPlan, train_pair
    from mlxctl.factory.traindata import edit_examples

    plan = TrainPlan()
    folder = BENCH_DIR / "home" / "factory" / "pair"  # where `mlxctl dev train-pair pair` puts it
    if args.steps:  # a shorter training, to try the script out: not the published figures
        plan = replace(plan, target_steps=args.steps, draft_steps=args.steps)
        folder = folder.with_name(f"pair-steps{args.steps}")
    report = train_pair(folder, plan, log=lambda line: print(line, flush=True))
    target, draft = report.target, report.draft
    k = args.draft_tokens
    engines = {
        "target alone": Engine(target),
        f"draft model (k={k})": Engine(target, speculation=Speculation(k, draft_model=draft)),
        f"prompt lookup (k={k})": Engine(target, speculation=Speculation(k, prompt_lookup=True)),
    }
    for engine in engines.values():
        engine.start()
    tokenizer = engines["target alone"].tokenizer
    examples = edit_examples(plan.eval_prompts, seed=plan.seed, held_out=True)
    edits = [
        list(tokenizer.apply_chat_template(example.messages(), add_generation_prompt=True))
        for example in examples[: args.prompts]
    ]
    free = [_chat(tokenizer, text) for text in FREE_PROMPTS[: args.prompts]]
    for workload, prompts in (
        ("context-repeating (rewrite with one change)", edits),
        ("free generation", free),
    ):
        _workload(args, workload, engines, prompts, args.rounds)
    for engine in engines.values():
        engine.close()
    # Where drafts mostly fail: free generation on a target that does not copy (the copying
    # one loops, which prompt lookup drafts); the rule must step aside there at little cost.
    nocopy = Path(args.nocopy_pair)
    if not (nocopy / "target" / "config.json").exists():
        print(f"\n(no non-copying pair at {nocopy}: the no-help workload is skipped)")
        return
    engines = {
        "target alone": Engine(nocopy / "target"),
        f"prompt lookup (k={k})": Engine(
            nocopy / "target", speculation=Speculation(k, prompt_lookup=True)
        ),
    }
    for engine in engines.values():
        engine.start()
    free = [_chat(engines["target alone"].tokenizer, text) for text in FREE_PROMPTS[: args.prompts]]
    name = f"free generation on the non-copying target ({nocopy.name})"
    _workload(args, name, engines, free, args.nocopy_rounds)
    for engine in engines.values():
        engine.close()


def _workload(
    args: argparse.Namespace,
    workload: str,
    engines: dict[str, Any],
    prompts: list[Any],
    rounds: int,
) -> None:
    """Greedy answers on `prompts`, engines taking turns; one table of rates and acceptance."""
    from mlxctl.engine.types import GenerationRequest, SamplingParams

    greedy = SamplingParams(temperature=0.0)
    # Answers end at EOS: tokens/s over all of them, request to last token (a burst of
    # accepted drafts is not a rate), engines taking turns on each prompt.
    spans: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in engines}
    outputs: dict[str, list[list[int]]] = {name: [] for name in engines}
    for engine in engines.values():
        _engine_run(engine, GenerationRequest(prompts[0], 8, greedy))  # warm-up
    before = {name: engine.stats() for name, engine in engines.items()}
    for _ in range(rounds):
        for prompt in prompts:
            for name, engine in engines.items():
                request = GenerationRequest(prompt, args.tokens, greedy)
                _, tokens, (wall, cpu) = _engine_run(engine, request)
                spans[name][0] += len(tokens)
                spans[name][1] += wall
                spans[name][2] += cpu
                outputs[name].append(tokens)
    counts = {}
    for name, engine in engines.items():
        after = engine.stats()
        counts[name] = (
            after["tokens_drafted_total"] - before[name]["tokens_drafted_total"],
            after["tokens_draft_accepted_total"] - before[name]["tokens_draft_accepted_total"],
        )
    rate_of = {name: done / wall for name, (done, wall, _) in spans.items()}
    cpu_of = {name: 1000 * cpu / done for name, (done, _, cpu) in spans.items()}
    ref = rate_of["target alone"]
    same = all(outputs[name] == outputs["target alone"] for name in engines)
    mean = statistics.mean(len(t) for t in outputs["target alone"])
    print(
        f"\n## Speculative, trained pair, greedy, {workload}: "
        f"{len(prompts)} prompts × {rounds}, at most {args.tokens} tokens"
    )
    print(f"(answers {mean:.0f} tokens on average; identical to the target alone: {same})")
    print(
        "| decoding | tok/s | vs target alone | CPU ms/token | speed by CPU "
        "| drafted | accepted | acceptance |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in engines:
        rate = rate_of[name]
        drafted, accepted = counts[name]
        share = f"{accepted / drafted:.0%}" if drafted else "—"
        cpu, cpu0 = cpu_of[name], cpu_of["target alone"]
        print(
            f"| {name} | {rate:.1f} | {rate / ref:.2f}× | {cpu:.2f} | {cpu0 / cpu:.2f}× "
            f"| {drafted} | {accepted} | {share} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="single,json,spec")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-streams", type=int, default=4, help="json: requests batched")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--draft-tokens", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="train the pair this many steps")
    parser.add_argument(
        "--nocopy-pair",
        default=str(BENCH_DIR / "home" / "factory" / "pair-old-nocopy"),
        help="spec: a trained pair whose target does not copy (free generation, drafts fail)",
    )
    parser.add_argument("--nocopy-rounds", type=int, default=10, help="spec: its rounds")
    args = parser.parse_args()
    blas = _reexec_with_blas()
    print(f"BLAS: {blas}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    parts = {"single": single, "json": json_schema, "spec": speculative}
    for name in args.part.split(","):
        parts[name](args)


if __name__ == "__main__":
    main()
