"""`mlxctl dev`: tools for developers — the test-model factory and a raw generate."""

from __future__ import annotations

import tempfile
import time
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


@dev.command("make-model")
@click.argument("name")
@click.option(
    "--arch",
    type=click.Choice(["llama", "qwen2", "gpt_oss"]),
    default="qwen2",
    show_default=True,
    help="gpt_oss: mixture of experts with a Harmony tokenizer and chat template.",
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
    arch: str,
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
    from mlxctl.factory import lay_out_hf_cache
    from mlxctl.factory import make_model as build

    quantize_bits = int(bits) if bits else None
    if gguf_quant is not None:
        if arch == "gpt_oss":
            raise click.UsageError("--gguf supports --arch llama and qwen2")
        _make_gguf(name, arch, size, seed, gguf_quant, out, repo_id)
        return
    if out is not None:
        build(out, arch=arch, size=size, seed=seed, dtype=dtype, quantize_bits=quantize_bits)
        console.print(f"Wrote {arch}/{size} model to {out}")
        return
    cache = Settings.from_env().hf_cache_dir
    repo = repo_id or f"mlxctl-factory/{name}"
    with tempfile.TemporaryDirectory(prefix="mlxctl-factory-") as tmp:
        build(Path(tmp), arch=arch, size=size, seed=seed, dtype=dtype, quantize_bits=quantize_bits)
        snapshot = lay_out_hf_cache(Path(tmp), cache, repo)
    console.print(f"Built {arch}/{size} model {repo} in the HF cache: {snapshot}")


def _make_gguf(
    name: str, arch: str, size: str, seed: int, quant: str, out: Path | None, repo_id: str | None
) -> None:
    from mlxctl.factory import lay_out_hf_cache
    from mlxctl.factory.gguf import make_gguf

    if out is not None:
        path = make_gguf(out, arch=arch, size=size, seed=seed, quant=quant)
        console.print(f"Wrote {arch}/{size} {quant} GGUF to {path}")
        return
    repo = repo_id or f"mlxctl-factory/{name}"
    with tempfile.TemporaryDirectory(prefix="mlxctl-factory-") as tmp:
        make_gguf(Path(tmp), arch=arch, size=size, seed=seed, quant=quant)
        snapshot = lay_out_hf_cache(Path(tmp), Settings.from_env().hf_cache_dir, repo)
    console.print(f"Built {arch}/{size} {quant} GGUF {repo} in the HF cache: {snapshot}")


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
