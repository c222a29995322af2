"""`mlxctl dev`: tools for developers — the test-model factory and a raw generate."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from mlxctl.cli.backend import backend
from mlxctl.cli.output import console
from mlxctl.operations import models
from mlxctl.operations.models import ModelArgs
from mlxctl.settings import Settings


@click.group()
def dev() -> None:
    """Developer tools (test models, raw generation)."""


_ARCHS = {
    "chat": ("qwen2", "llama", "gpt_oss", "qwen3_5", "gemma3_text"),
    "vision": ("qwen2_5_vl",),
    "embedding": ("bert",),
    "rerank": ("bert",),
}


@dev.command("make-model")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(list(_ARCHS)),
    default="chat",
    show_default=True,
    help="chat (mlx-lm), vision (mlx-vlm), embedding (sentence encoder), rerank (cross-encoder).",
)
@click.option(
    "--arch",
    type=click.Choice(sorted({a for archs in _ARCHS.values() for a in archs})),
    help="Architecture (default: the kind's first: qwen2, qwen2_5_vl, bert); gpt_oss is a "
    "mixture of experts with a Harmony tokenizer and chat template.",
)
@click.option(
    "--size", type=click.Choice(["tiny", "small", "0.5b"]), default="tiny", show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
)
@click.option("--quantize", "bits", type=click.Choice(["4", "8"]), help="Quantize with mlx-lm.")
@click.option("--out", type=click.Path(path_type=Path), help="Write a plain folder here instead.")
@click.option("--repo-id", help="HF repo id to lay it out under (default mlxctl-factory/NAME).")
@click.option(
    "--gguf",
    "gguf_quant",
    type=click.Choice(["F32", "F16", "Q8_0", "Q4_0"]),
    help="Write one GGUF file of this type (llama.cpp) instead of MLX safetensors.",
)
def make_model(
    name: str,
    kind: str,
    arch: str | None,
    size: str,
    seed: int,
    dtype: str,
    bits: str | None,
    out: Path | None,
    repo_id: str | None,
    gguf_quant: str | None,
) -> None:
    """Build a random-weight model of a real architecture with a real tokenizer.

    By default it is laid out in this machine's Hugging Face cache exactly as a
    download would be, so `mlxctl init` finds it (the daemon's, when it runs here).
    """
    arch = arch or _ARCHS[kind][0]
    if arch not in _ARCHS[kind]:
        raise click.UsageError(
            f"--arch {arch} is not a {kind} architecture; choose {', '.join(_ARCHS[kind])}"
        )
    if kind != "chat" and (bits or gguf_quant or dtype != "float32"):
        raise click.UsageError(f"--quantize, --gguf and --dtype apply to chat models, not {kind}")
    if gguf_quant is not None:
        if arch not in ("llama", "qwen2"):
            raise click.UsageError("--gguf supports --arch llama and qwen2")
        _make_gguf(name, arch, size, seed, gguf_quant, out, repo_id)
        return

    def build(folder: Path) -> None:
        _build(folder, kind, arch, size, seed, dtype, int(bits) if bits else None)

    try:
        if out is not None:
            build(out)
            console.print(f"Wrote {kind} model {arch}/{size} to {out}")
            return
        repo = repo_id or f"mlxctl-factory/{name}"
        snapshot = _in_hf_cache(repo, build)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("mlx_vlm"):
            raise
        raise click.ClickException(
            "Vision models need mlx-vlm. Install it with: pip install 'mlxctl[vision]'"
        ) from exc
    console.print(f"Built {kind} model {arch}/{size} {repo} in the HF cache: {snapshot}")


def _build(
    folder: Path, kind: str, arch: str, size: str, seed: int, dtype: str, bits: int | None
) -> None:
    if kind == "chat":
        from mlxctl.factory import make_model as build_chat

        build_chat(folder, arch=arch, size=size, seed=seed, dtype=dtype, quantize_bits=bits)
    elif kind == "vision":
        from mlxctl.factory.vision import make_vision_model

        make_vision_model(folder, arch=arch, size=size, seed=seed)
    elif kind == "embedding":
        from mlxctl.factory.embedding import make_embedding_model

        make_embedding_model(folder, size=size, seed=seed)
    else:
        from mlxctl.factory.embedding import make_reranker_model

        make_reranker_model(folder, size=size, seed=seed)


def _in_hf_cache(repo: str, build: Callable[[Path], object]) -> Path:
    """Build into a temporary folder, then file it into the HF cache as a download would."""
    from mlxctl.factory import lay_out_hf_cache

    with tempfile.TemporaryDirectory(prefix="mlxctl-factory-") as tmp:
        build(Path(tmp))
        return lay_out_hf_cache(Path(tmp), Settings.from_env().hf_cache_dir, repo)


def _make_gguf(
    name: str, arch: str, size: str, seed: int, quant: str, out: Path | None, repo_id: str | None
) -> None:
    from mlxctl.factory.gguf import make_gguf

    if out is not None:
        path = make_gguf(out, arch=arch, size=size, seed=seed, quant=quant)
        console.print(f"Wrote {arch}/{size} {quant} GGUF to {path}")
        return
    repo = repo_id or f"mlxctl-factory/{name}"
    snapshot = _in_hf_cache(
        repo, lambda tmp: make_gguf(tmp, arch=arch, size=size, seed=seed, quant=quant)
    )
    console.print(f"Built {arch}/{size} {quant} GGUF {repo} in the HF cache: {snapshot}")


@dev.command("train-pair")
@click.argument("name", default="pair")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--target-steps", type=click.IntRange(1), help="Training steps of the target.")
@click.option("--draft-steps", type=click.IntRange(1), help="Training steps of the draft.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Train into this folder (default MLXCTL_HOME/factory/NAME) and skip the HF cache.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def train_pair(
    name: str,
    seed: int,
    target_steps: int | None,
    draft_steps: int | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Train a small target and a tiny draft model (one tokenizer) for speculative decoding.

    A few minutes on a CPU, on the factory's local text (stdlib sources and "rewrite this
    code" chats). The result is cached: a second run with the same options reuses it.
    Both are laid out in the HF cache as mlxctl-factory/NAME-target and NAME-draft.
    """
    from dataclasses import asdict, replace

    from mlxctl.factory.train import TrainPlan
    from mlxctl.factory.train import train_pair as train

    _reexec_with_blas()
    settings = Settings.from_env()
    plan = TrainPlan(seed=seed)
    plan = replace(
        plan,
        target_steps=target_steps or plan.target_steps,
        draft_steps=draft_steps or plan.draft_steps,
    )
    folder = out or settings.home / "factory" / name
    report = train(folder, plan, log=None if as_json else _progress)
    if out is None:
        from mlxctl.factory import lay_out_hf_cache

        for role, path in (("target", report.target), ("draft", report.draft)):
            lay_out_hf_cache(path, settings.hf_cache_dir, f"mlxctl-factory/{name}-{role}")
    if as_json:
        data = asdict(report)
        data["target"], data["draft"] = str(report.target), str(report.draft)
        click.echo(json.dumps(data, indent=2))
        return
    a = report.acceptance
    console.print(
        f"target {report.target_parameters:,} parameters, {report.target_seconds:.0f}s, "
        f"loss {report.target_loss[0]:.2f} → {report.target_loss[1]:.2f}\n"
        f"draft  {report.draft_parameters:,} parameters, {report.draft_seconds:.0f}s, "
        f"loss {report.draft_loss[0]:.2f} → {report.draft_loss[1]:.2f}\n"
        f"greedy acceptance {a.acceptance_rate:.0%} (drafts of {a.block}), "
        f"token agreement {a.token_agreement:.0%}, target copies its context {a.context_copy:.0%}"
    )
    if out is None:
        console.print(f"Laid out as mlxctl-factory/{name}-target and mlxctl-factory/{name}-draft")


def _progress(line: str) -> None:
    console.print(f"[dim]{line}[/dim]")


def _reexec_with_blas() -> None:
    """Run this command again with OpenBLAS preloaded: training is ~6x faster (engine/blas.py)."""
    from mlxctl.engine.blas import preload_env

    env = preload_env(os.environ, Settings.from_env().blas)
    if env is None or env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return
    # Only the real command re-execs; an in-process caller (a test) trains as it is.
    if sys.argv[1:3] != ["dev", "train-pair"]:
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "mlxctl.cli.main", *sys.argv[1:]], env)


@dev.command("generate")
@click.argument("model")
@click.option("-p", "--prompt", default="Hello! Who are you?", show_default=True)
@click.option("-n", "--max-tokens", type=int, default=16, show_default=True)
def generate(model: str, prompt: str, max_tokens: int) -> None:
    """Generate straight through mlx-lm (no daemon): a smoke test for a registered model."""
    from mlxctl.engine import mlxlm

    # The registry's answer (the daemon's when one runs); the weights are read here.
    record = backend().run(models.SHOW, ModelArgs(model=model))
    started = time.perf_counter()
    lm, tokenizer = mlxlm.load(record["cache_path"])
    loaded = time.perf_counter() - started
    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(  # type: ignore[no-untyped-call]
        messages, add_generation_prompt=True, tokenize=False
    )
    console.print(f"[dim]{record['slug']} loaded in {loaded:.2f}s[/dim]")
    response = None
    for response in mlxlm.stream_generate(lm, tokenizer, text, max_tokens=max_tokens):
        console.print(response.text, end="", markup=False)
    console.print()
    if response is not None:
        console.print(
            f"[dim]{response.generation_tokens} tokens, "
            f"{response.generation_tps:.1f} tokens/s[/dim]"
        )
