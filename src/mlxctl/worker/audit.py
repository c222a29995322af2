"""The startup audit: one JSON line stating what this worker actually runs with.

Written once, when the model has loaded, to stderr (where the supervisor keeps
the worker's log). It records effective values, after registry overrides and
mlx-lm's inference, so "why did it parse tool calls like that?" has an answer
in the log: model path, LoRA adapter, template source, tool and reasoning
parsers, the model's request defaults, system prompt and few-shot turns, cache
and batch limits, and the versions of mlxctl, mlx, mlx-lm and llguidance.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from mlxctl import __version__
from mlxctl.engine.blas import loaded_blas
from mlxctl.worker.app import WorkerState

_PACKAGES = ("mlx", "mlx-lm", "llguidance", "starlette", "uvicorn")
_ENGINE_LIMITS = ("max_batch", "max_queue", "prefill_step_size")
_CACHE_LIMITS = ("prompt_cache_entries", "prompt_cache_bytes")


def audit_record(
    state: WorkerState, *, host: str, port: int, key_required: bool = False
) -> dict[str, Any]:
    """The effective settings of a loaded worker, as plain JSON-able data."""
    engine, model = state.engine, state.model
    syntax = state.syntax
    return {
        "event": "worker.ready",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pid": os.getpid(),
        "listen": {"host": host, "port": port, "api_key": key_required},
        "load_seconds": round(time.monotonic() - state.started, 3),
        "model": {
            "id": model.id,
            "path": str(model.path),
            "repo_id": model.repo_id,
            "context_length": engine.context_length,
            "vocab_size": state.vocab_size,
            "adapter_path": str(model.adapter_path) if model.adapter_path else None,
        },
        "defaults": dict(model.defaults),
        "system_prompt": model.system is not None,
        "few_shot_messages": len(model.messages),
        "chat_template": state.prompter.template_source,
        "tool_call_parser": syntax.tool_parser,
        "tool_call_markers": [syntax.tool.start, syntax.tool.end] if syntax.tool else None,
        "reasoning_parser": syntax.reasoning_parser,
        "think_markers": list(syntax.think) if syntax.think else None,
        "structured_output": "llguidance",
        "preset": model.preset,
        "batch": {name: getattr(engine, name, None) for name in _ENGINE_LIMITS},
        "prompt_cache": {name: getattr(engine, name, None) for name in _CACHE_LIMITS},
        "kv_cache": _kv_cache(engine),
        "speculation": _speculation(engine),
        "client_templates": state.sandbox is not None,
        "test_hooks": state.test_hooks,
        "versions": {"mlxctl": __version__, **{p: _version(p) for p in _PACKAGES}},
        "blas": loaded_blas(),
    }


def _kv_cache(engine: object) -> dict[str, Any] | None:
    """KV quantization, disk tier and checkpoints of an MLX engine (None for others)."""
    options = getattr(engine, "cache_options", None)
    if options is None:
        return None
    return {
        "kv_bits": options.kv_bits,
        "kv_group_size": options.kv_group_size,
        "disk_cache_bytes": options.disk_bytes if options.disk_dir else 0,
        "checkpoint_every": options.checkpoint_every,
    }


def _speculation(engine: Any) -> dict[str, Any] | None:
    """Speculative decoding as the engine runs it (engine/speculative.py); None: off."""
    spec = getattr(engine, "speculation", None)
    if spec is None or not spec.enabled:
        return None
    draft = spec.draft_model
    return {
        "draft_model": str(draft) if draft is not None else None,
        "prompt_lookup": spec.prompt_lookup,
        "num_draft_tokens": spec.num_draft_tokens,
        "off": getattr(engine, "speculation_off", None),  # why it cannot run, if it cannot
    }


def emit(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write the record as exactly one line of JSON."""
    out = stream if stream is not None else sys.stderr
    out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    out.flush()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
