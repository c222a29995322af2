"""`POST /api/create`: Ollama's create, as a ModelSpec built through the admin API's create.

    {"model": "pirate", "from": "qwen", "system": "Talk like a pirate.",
     "parameters": {"temperature": 0.7, "stop": ["</s>"]}, "stream": true}

The JSON body becomes a ModelSpec (docs/modelspec.md) and runs as
`operations.store.CREATE`, so the result is a store model like any `mlxctl create`:

    from          FROM: a registered or store model
    files         FROM a folder of uploaded blobs ({file name: digest}, sent first with
                  POST /api/blobs/:digest): a Hugging Face MLX model folder's files
    adapters      ADAPTER: uploaded adapters.safetensors + adapter_config.json
    template      TEMPLATE (Jinja, as in tokenizer_config.json; Ollama's Go templates
                  are refused with a 400 that says so)
    system, messages, license, quantize ("q4_K_M" → QUANTIZE 4, "q8_0" → 8)
    parameters    PARAMETER: ModelSpec's names and Ollama's (num_predict, repeat_penalty,
                  repeat_last_n); num_ctx is accepted and changes nothing (as in /api/chat)

Progress is NDJSON (`progress.py`) ending in `{"status": "success"}`; anything
that cannot be honoured is a 400 naming the field, before any line is sent.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response

from mlxctl.api.admin.operations import context
from mlxctl.api.body import bool_field, name_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.ollama.blobs import digest_of
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.api.ollama.progress import answer
from mlxctl.library import catalog
from mlxctl.operations import Result
from mlxctl.operations.store import CREATE, CreateArgs
from mlxctl.store.content.blobs import remove_tree
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import MODEL_FILE_PATTERNS
from mlxctl.store.content.modelspec import (
    PARAMETERS,
    QUANT_BITS,
    ROLES,
    ModelSpec,
    Value,
    format_spec,
)
from mlxctl.store.content.tags import parse_name
from mlxctl.store.progress import Progress

_FIELDS = {
    "model",
    "name",
    "from",
    "files",
    "adapters",
    "template",
    "license",
    "system",
    "parameters",
    "messages",
    "quantize",
    "stream",
}
_GONE = {"modelfile", "path"}  # Ollama's pre-0.5 create body
# Ollama's option names for ModelSpec's parameters.
_ALIASES = {
    "num_predict": "max_tokens",
    "repeat_penalty": "repetition_penalty",
    "repeat_last_n": "repetition_context_size",
}
_IGNORED = {"num_ctx"}  # the model keeps its context (as /api/chat does with it)
_ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")
# Go template actions ({{ .Prompt }}, {{ if .System }}, {{- range ... }}): not Jinja.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|if\s|range\s|end\b|else\b|with\s|template\s|block\s)")


@OLLAMA.handler(fields=_FIELDS | _GONE)
async def create(incoming: Incoming) -> Response:
    body, app = incoming.body, incoming.request.app
    name = str(parse_name(name_field(body, "model", "name")))
    stream = bool_field(body, "stream", True)
    layout = catalog.open_store(app.state.settings)
    spec, files, adapters = _spec(body, layout)
    work = _work(app, layout, name, spec, files, adapters)
    return await answer(work, stream=stream, verb="using", first="parsing modelfile")


def _work(
    app: Starlette,
    layout: StoreLayout,
    name: str,
    spec: ModelSpec,
    files: dict[str, str],
    adapters: dict[str, str],
) -> Callable[[Progress], Result]:
    """The create, to run in a thread: the uploaded files' folders live as long as it
    runs (a client that goes away does not cut it short)."""
    ctx = context(app)

    def work(progress: Progress) -> Result:
        ctx.progress = progress
        with _folders(layout, files, adapters) as (base, adapter):
            full = replace(
                spec,
                base=str(base) if base else spec.base,
                adapter=str(adapter) if adapter else spec.adapter,
            )
            args = CreateArgs(
                name=name, modelspec=format_spec(full), directory="/", source="/api/create"
            )
            return CREATE.run(ctx, args)

    return work


# The body as a ModelSpec ------------------------------------------------------------


def _spec(
    body: dict[str, Any], layout: StoreLayout
) -> tuple[ModelSpec, dict[str, str], dict[str, str]]:
    """The spec (FROM/ADAPTER filled in later for uploaded files), the files, the adapters."""
    gone = sorted(_GONE & set(body))
    if gone:
        raise _bad(
            f"/api/create no longer takes '{gone[0]}' (Ollama 0.5 replaced it): send "
            "'from' (a model) or 'files' (uploaded blobs), with 'system', 'template', ..."
        )
    base = _optional_text(body, "from")
    files = _blob_map(body, "files", layout)
    adapters = _blob_map(body, "adapters", layout)
    if (base is None) == (not files):
        raise _bad("/api/create needs either 'from' (a model name) or 'files' (uploaded blobs)")
    missing = [f for f in _ADAPTER_FILES if adapters and f not in adapters]
    if missing:
        raise _bad(f"adapters needs {' and '.join(_ADAPTER_FILES)} (mlx_lm.lora's output)")
    template = _optional_text(body, "template")
    if template is not None and _GO_TEMPLATE.search(template):
        raise _bad(
            "template is a Go template (Ollama's); mlxctl takes a Jinja chat template, "
            "as in a model's tokenizer_config.json"
        )
    return (
        ModelSpec(
            base=base or "files",
            parameters=_parameters(body.get("parameters")),
            template=template,
            system=_optional_text(body, "system"),
            messages=_messages(body.get("messages")),
            licenses=_licenses(body.get("license")),
            quantize=_quantize(body.get("quantize")),
        ),
        files,
        adapters,
    )


def _parameters(value: object) -> tuple[tuple[str, Value], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _bad("'parameters' must be an object of option names and values")
    out: list[tuple[str, Value]] = []
    for given, raw in value.items():
        if given in _IGNORED or raw is None:
            continue
        name = _ALIASES.get(str(given), str(given))
        kind = PARAMETERS.get(name)
        if kind is None:
            known = ", ".join([*PARAMETERS, *_ALIASES, *_IGNORED])
            raise _bad(f"parameters: '{given}' is not an option mlxctl knows ({known})")
        if kind is str:
            stops = raw if isinstance(raw, list) else [raw]
            if not all(isinstance(s, str) and s for s in stops):
                raise _bad(f"parameters: '{given}' must be a string or a list of strings")
            out += [(name, s) for s in stops]
        elif isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _bad(f"parameters: '{given}' must be a number")
        elif kind is int and not float(raw).is_integer():
            raise _bad(f"parameters: '{given}' must be a whole number")
        else:
            out.append((name, int(raw) if kind is int else float(raw)))
    return tuple(out)


def _messages(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad("'messages' must be a list of {role, content}")
    out = []
    for message in value:
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise _bad(f"messages: each needs a role ({', '.join(ROLES)}) and text content")
        out.append((role, content))
    return tuple(out)


def _licenses(value: object) -> tuple[str, ...]:
    texts = [] if value is None else value if isinstance(value, list) else [value]
    if not all(isinstance(t, str) for t in texts):
        raise _bad("'license' must be a string or a list of strings")
    return tuple(texts)


def _quantize(value: object) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"q?(\d)(_.*)?", str(value).lower())
    if not isinstance(value, str) or match is None or int(match.group(1)) not in QUANT_BITS:
        raise _bad(
            f"quantize {value!r}: name the bits, e.g. q4_K_M or q8_0 "
            f"(mlx-lm quantizes to {', '.join(map(str, QUANT_BITS))} bits)"
        )
    return int(match.group(1))


def _optional_text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or (field == "from" and not value.strip()):
        raise _bad(f"'{field}' must be a non-empty string")
    return value.strip() if field == "from" else value


def _blob_map(body: dict[str, Any], field: str, layout: StoreLayout) -> dict[str, str]:
    """{file name: digest} of blobs the store holds; a missing one is a 400 with the fix."""
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"'{field}' must be an object of file names and sha256 digests")
    out: dict[str, str] = {}
    for file, digest in value.items():
        if not file or "/" in file or file in (".", "..") or not isinstance(digest, str):
            raise _bad(f"{field}: {file!r} must be a plain file name with a sha256 digest")
        if field == "files" and not any(fnmatch.fnmatch(file, p) for p in MODEL_FILE_PATTERNS):
            raise _bad(
                f"files: {file!r} is not a file of an MLX model folder "
                f"(config.json, model*.safetensors, tokenizer files, ...)"
            )
        out[file] = digest_of(digest)
        if not layout.blobs.has(out[file]):
            raise _bad(
                f"{field}: {file} ({out[file]}) has not been uploaded: "
                f"POST its bytes to /api/blobs/{out[file]} first"
            )
    return out


@contextmanager
def _folders(
    layout: StoreLayout, files: dict[str, str], adapters: dict[str, str]
) -> Iterator[tuple[Path | None, Path | None]]:
    """Folders of links to the uploaded blobs, FROM and ADAPTER read them; removed after."""
    if not files and not adapters:
        yield None, None
        return
    root = layout.root / f".tmp-create-{secrets.token_hex(6)}"
    try:
        for folder, names in (("model", files), ("adapter", adapters)):
            (root / folder).mkdir(parents=True)
            for file, digest in names.items():
                os.symlink(layout.blobs.path(digest), root / folder / file)
        yield (root / "model" if files else None), (root / "adapter" if adapters else None)
    finally:
        remove_tree(root)


def _bad(message: str) -> APIError:
    return APIError(400, message, code="invalid_value")
