"""`mlxctl worker MODEL`: serve one model over an OpenAI-compatible API.

The process the daemon supervises per loaded model, and a drop-in for
`mlx_lm.server` when run by hand. MODEL is a registered name (slug, repo id or
unambiguous prefix) or a path to a model folder (`./qwen`, `~/models/qwen`, `/x`).

With a key (`--api-key-file`, else MLXCTL_API_KEY) every route but /health needs
it; without one the worker listens on loopback only, as `mlxctl serve` does.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlxctl.errors import InvalidInput, Unavailable
from mlxctl.units import parse_size

if TYPE_CHECKING:
    from mlxctl.backend import Backend
    from mlxctl.engine.encoder import EncoderEngine
    from mlxctl.engine.llamacpp import LlamaCppEngine
    from mlxctl.engine.vlm import VisionEngine
    from mlxctl.worker.app import ServedModel, WorkerEngine


@click.command("worker")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0: any free).")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the API key clients must send (mode 0600; default: MLXCTL_API_KEY).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Sequences decoded together.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(0),
    default=64,
    show_default=True,
    help="Requests waiting beyond the batch; more get 429 with Retry-After.",
)
@click.option(
    "--prompt-cache-entries",
    type=click.IntRange(0),
    default=16,
    show_default=True,
    help="KV caches of past prompts kept for reuse.",
)
@click.option(
    "--prompt-cache-bytes",
    default="2GiB",
    show_default=True,
    help="Memory cap of the prompt cache (bytes, or e.g. 512MiB).",
)
@click.option(
    "--kv-bits",
    type=click.Choice(["4", "8"]),
    help="Quantize the KV cache to this many bits (MLX models; default: the model's dtype).",
)
@click.option(
    "--kv-group-size",
    type=click.Choice(["32", "64", "128"]),
    default="64",
    show_default=True,
    help="Elements per scale and bias in a quantized KV cache.",
)
@click.option(
    "--disk-cache-bytes",
    default="0",
    show_default=True,
    help="Disk cap of the prompt cache under MLXCTL_HOME/prompt-cache (e.g. 4GiB; 0: off).",
)
@click.option(
    "--disk-cache-min-tokens",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Shortest prompt whose cache is written to disk.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(0),
    default=1024,
    show_default=True,
    help="Tokens between prefix checkpoints of hybrid and sliding-window models (0: none).",
)
@click.option(
    "--context",
    type=click.IntRange(1),
    help="Context window in tokens (default: the model's; a GGUF's capped at 8192).",
)
@click.option(
    "--prefill-step-size",
    type=click.IntRange(1),
    help="Prompt tokens processed per step (default: 512 on the CPU, 2048 on a GPU).",
)
@click.option(
    "--draft-model",
    help="Speculative decoding with this draft model (a registered name or a folder; it must "
    "share the model's tokenizer).",
)
@click.option(
    "--prompt-lookup",
    is_flag=True,
    help="Speculative decoding with n-gram drafts from the prompt and reply (no second model).",
)
@click.option(
    "--num-draft-tokens",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    help="Tokens drafted per speculative step.",
)
@click.option(
    "--chat-template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Jinja chat template file (overrides the registry and the tokenizer).",
)
@click.option("--tool-call-parser", help="mlx-lm tool parser name (default: inferred).")
@click.option("--reasoning-parser", help="think, harmony or none (default: inferred).")
@click.option("--preset", help="The config.yaml preset these options came from (audit only).")
@click.option(
    "--graceful-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds running requests get to finish on SIGTERM.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def worker(
    model: str,
    host: str,
    port: int,
    api_key_file: Path | None,
    max_batch: int,
    max_queue: int,
    prompt_cache_entries: int,
    prompt_cache_bytes: str,
    kv_bits: str | None,
    kv_group_size: str,
    disk_cache_bytes: str,
    disk_cache_min_tokens: int,
    checkpoint_every: int,
    context: int | None,
    prefill_step_size: int | None,
    draft_model: str | None,
    prompt_lookup: bool,
    num_draft_tokens: int,
    chat_template: Path | None,
    tool_call_parser: str | None,
    reasoning_parser: str | None,
    preset: str | None,
    graceful_timeout: float,
    log_level: str,
) -> None:
    """Serve MODEL (a registered name or a model folder) on HOST:PORT.

    Logs one JSON `worker.listening` line at once and one `worker.ready` audit
    line with the effective settings when the model has loaded.
    """
    from dataclasses import replace

    from mlxctl.httpguard import check_bind, read_key_file
    from mlxctl.settings import Settings

    api_key = read_key_file(api_key_file) if api_key_file else Settings.from_env().api_key
    check_bind(host, api_key)
    _reexec_with_blas()
    from mlxctl.engine.generator import Engine
    from mlxctl.engine.speculative import Speculation
    from mlxctl.worker.server import run_worker

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from mlxctl.worker.access import write_lines_to

    write_lines_to(sys.stderr)  # one bare JSON line per request, like the daemon's
    info, backend = resolve_backend(model)
    if chat_template is not None:
        info = replace(info, chat_template=str(chat_template))
    if tool_call_parser:
        info = replace(info, tool_call_parser=tool_call_parser)
    if reasoning_parser:
        info = replace(info, reasoning_parser=reasoning_parser)
    if preset:
        info = replace(info, preset=preset)
    cache_bytes = parse_size(prompt_cache_bytes)
    from mlxctl.engine.cachetiers import CacheOptions

    disk_bytes = parse_size(disk_cache_bytes)
    cache_options = CacheOptions(
        kv_bits=int(kv_bits) if kv_bits else None,
        kv_group_size=int(kv_group_size),
        disk_dir=Settings.from_env().home / "prompt-cache" if disk_bytes else None,
        disk_bytes=disk_bytes,
        disk_min_tokens=disk_cache_min_tokens,
        checkpoint_every=checkpoint_every,
    )
    draft_path = resolve_model(draft_model).path if draft_model else None

    def load_engine() -> WorkerEngine:
        engine: Engine | LlamaCppEngine | EncoderEngine | VisionEngine
        if backend.engine == "llama.cpp":
            from mlxctl.engine.llamacpp import LlamaCppEngine

            engine = LlamaCppEngine(
                info.path, max_batch=max_batch, max_queue=max_queue, context_length=context
            )
        elif backend.engine == "encoder":
            from mlxctl.engine.encoder import EncoderEngine  # BERT-family sentence encoders

            engine = EncoderEngine(info.path, max_queue=max_queue)
        elif backend.engine == "mlx-vlm":
            from mlxctl.engine.vlm import VisionEngine  # vision-language models

            engine = VisionEngine(info.path, max_queue=max_queue)
        else:
            engine = Engine(
                info.path,
                max_batch=max_batch,
                max_queue=max_queue,
                prompt_cache_entries=prompt_cache_entries,
                prompt_cache_bytes=cache_bytes,
                prefill_step_size=prefill_step_size,
                adapter_path=info.adapter_path,
                cache_options=cache_options,
                speculation=Speculation(num_draft_tokens, draft_path, prompt_lookup),
            )
        engine.start()
        if context is not None and engine.context_length > context:
            engine.context_length = context  # prompt + answer stay within what was budgeted
        return engine

    code = run_worker(
        info,
        load_engine,
        host=host,
        port=port,
        api_key=api_key,
        graceful_timeout=graceful_timeout,
        log_level=log_level,
    )
    if code:
        raise Unavailable(f"the worker for '{info.id}' stopped: the model failed to load")


def resolve_model(reference: str) -> ServedModel:
    """A registered model with its overrides, else a model folder (or GGUF file) path.

    (`resolve_backend` also says which engine serves it.)
    """
    return resolve_backend(reference)[0]


def resolve_backend(reference: str) -> tuple[ServedModel, Backend]:
    """A registered model with its overrides, else a model folder (or GGUF file) path,
    and the backend that serves it (`mlxctl.backend`: one decision for every part).

    The registry comes first: a folder in the working directory named like a slug
    never replaces a registered model. A reference is a path only when it looks like
    one (`./x`, `~/x`, `/x`), or holds a `/` and is no registered name (`org/repo` is).
    A store model also brings its ModelSpec: adapter, PARAMETER defaults, SYSTEM and
    MESSAGE turns. One `store verify` marked damaged is refused.
    """
    from mlxctl.backend import backend_of, backend_of_path
    from mlxctl.errors import NotFound
    from mlxctl.registry import open_registry
    from mlxctl.settings import Settings
    from mlxctl.store.local.confine import adapter_dir, template_override
    from mlxctl.worker.app import ServedModel
    from mlxctl.worker.requests import request_defaults

    path = Path(reference).expanduser()
    model_path = path.is_dir() or (path.is_file() and path.suffix == ".gguf")
    if model_path and reference.startswith((".", "~", "/")):
        return ServedModel(id=path.resolve().name, path=path.resolve()), backend_of_path(path)
    registry = open_registry()
    try:
        record = registry.resolve(reference)
    except NotFound as e:
        if model_path and "/" in reference:
            folder = ServedModel(id=path.resolve().name, path=path.resolve())
            return folder, backend_of_path(path)
        if model_path:
            hint = f"to serve the folder, name it as a path: ./{reference}"
            raise NotFound(e.message, hint=hint) from None
        raise
    finally:
        registry.db.close()
    damaged = record.damaged_files
    if damaged:
        name = record.store.name if record.store is not None else record.slug
        raise Unavailable(
            f"model '{record.slug}' is damaged in the store: {', '.join(map(str, damaged))} "
            "failed verification",
            hint=f"check it with `mlxctl store verify {name}`, then re-pull it "
            f"(`mlxctl pull {name}`) or re-create it",
        )
    options = record.request_options
    if not isinstance(options, dict):
        raise InvalidInput(f"model '{record.slug}': its options are not an object")
    defaults, ignored = request_defaults(options)
    if ignored:
        logging.getLogger("mlxctl.worker").warning(
            "model '%s': options not applied by this worker: %s", record.slug, ", ".join(ignored)
        )
    # The row names files: read only those inside the store (store/local/confine.py).
    store_root = Settings.from_env().store_dir
    template = template_override(record, store_root)
    info = ServedModel(
        id=record.slug,
        path=Path(record.cache_path),
        repo_id=record.repo_id,
        chat_template=str(template) if template is not None else None,
        tool_call_parser=record.tool_call_parser,
        reasoning_parser=record.reasoning_parser,
        adapter_path=adapter_dir(record, store_root),
        defaults=defaults,
        system=record.system,
        messages=_few_shot(record.slug, record.messages),
    )
    return info, backend_of(record)


def _few_shot(slug: str, value: object) -> list[dict[str, str]]:
    """MESSAGE turns from the registry, checked (the row is data a user may edit)."""
    turns: list[dict[str, str]] = []
    for turn in value if isinstance(value, list) else [value] if value else []:
        role = turn.get("role") if isinstance(turn, dict) else None
        content = turn.get("content") if isinstance(turn, dict) else None
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise InvalidInput(f"model '{slug}': its few-shot messages are malformed: {value!r}")
        turns.append({"role": str(role), "content": content})
    return turns


def _reexec_with_blas() -> None:
    """Run this command again, once, with OpenBLAS preloaded (Linux; see engine/blas.py)."""
    from mlxctl.engine.blas import MARKER, preload_env
    from mlxctl.settings import Settings

    env = preload_env(os.environ, Settings.from_env().blas)
    if env is None:
        return
    # Only a real `mlxctl worker` process re-execs; in-process callers just get the marker.
    if env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD") or sys.argv[1:2] != ["worker"]:
        os.environ[MARKER] = env[MARKER]
        return
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "mlxctl.cli.main", *sys.argv[1:]], env)
