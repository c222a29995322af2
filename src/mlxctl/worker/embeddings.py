"""`POST /v1/embeddings` on the worker: inputs → token ids → the engine's `embed` → OpenAI body.

    {"input": str | [str] | [int] | [[int]], "encoding_format": "float" | "base64",
     "dimensions": int, "truncate": bool (mlxctl: cut inputs to the context)}

Tokenization runs in a worker thread; the vectors come from the engine's own thread
(a BERT encoder, or a chat model's pooled hidden state: docs/embeddings.md).
`dimensions` truncates and re-normalises, but only for models whose config.json lists
`matryoshka_dimensions` (trained for it); others answer 400 unless it is the full size.
A request carries at most MLXCTL_MAX_EMBED_INPUTS inputs, and waits in the engine's
admission queue like a generation (429 with Retry-After when it is full).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlxctl.httpguard import json_object
from mlxctl.jsonnum import as_int
from mlxctl.worker.openai_errors import APIError

__all__ = ["create", "parse_input"]

_FIELDS = {"model", "input", "encoding_format", "dimensions", "user", "truncate"}

Embed = Callable[[list[list[int]]], Awaitable[list[list[float]]]]


async def create(request: Request, state: Any) -> Response:
    """The handler; `state` is the app's WorkerState (typed loosely to avoid a cycle)."""
    engine = state.engine
    embed: Embed | None = getattr(engine, "embed", None)
    if embed is None:
        raise APIError(400, "This model's engine does not serve embeddings.", code="unsupported")
    body = json_object(await request.body())
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    truncate = body.get("truncate", False)
    if not isinstance(truncate, bool):
        raise _bad("'truncate' must be a boolean.", "truncate")
    inputs = parse_input(body.get("input"), max_inputs=state.settings.max_embed_inputs)
    token_lists = await anyio.to_thread.run_sync(_tokenize, engine.tokenizer, inputs)
    _check(token_lists, engine.context_length, len(engine.tokenizer), truncate=truncate)
    if truncate:
        token_lists = [tokens[: engine.context_length] for tokens in token_lists]
    state.requests_total += 1
    vectors = await embed(token_lists)
    dimensions = _dimensions(body.get("dimensions"), len(vectors[0]), state.model.path)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(_cut(v, dimensions), encoding)}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(map(len, token_lists))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": state.model.id, "usage": usage})


def parse_input(value: object, *, max_inputs: int | None = None) -> list[str | list[int]]:
    """OpenAI's four input shapes as a list of texts or token-id lists; 400 otherwise,
    or when there are more than `max_inputs`."""
    if isinstance(value, str) or (isinstance(value, list) and value and _ids(value) is not None):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _bad("'input' must be a string, a list of strings or of token ids.", "input")
    if max_inputs is not None and len(value) > max_inputs:
        raise _bad(
            f"'input' has {len(value)} items; one request takes at most {max_inputs} "
            "(MLXCTL_MAX_EMBED_INPUTS): split it into several requests.",
            "input",
        )
    items: list[str | list[int]] = []
    for item in value:
        if isinstance(item, str) and item:
            items.append(item)
        elif isinstance(item, list) and item and (ids := _ids(item)) is not None:
            items.append(ids)
        else:
            raise _bad("Each input must be a non-empty string or list of token ids.", "input")
    return items


def _tokenize(tokenizer: Any, inputs: list[str | list[int]]) -> list[list[int]]:
    return [list(tokenizer.encode(x)) if isinstance(x, str) else x for x in inputs]


def _check(token_lists: list[list[int]], context: int, vocab: int, *, truncate: bool) -> None:
    for tokens in token_lists:
        if not tokens:
            raise _bad("An input has no tokens.", "input")
        if min(tokens) < 0 or max(tokens) >= vocab:
            raise _bad(f"Token ids must be in [0, {vocab}).", "input")
        if len(tokens) > context and not truncate:
            raise APIError(
                400,
                f"This model's maximum context length is {context} tokens, but an input has "
                f'{len(tokens)} tokens. Shorten it, or send "truncate": true.',
                param="input",
                code="context_length_exceeded",
            )


def _dimensions(value: object, full: int, path: Path) -> int:
    if value is None:
        return full
    wanted = as_int(value)
    if wanted is None or not 1 <= wanted <= full:
        raise _bad(f"'dimensions' must be an integer from 1 to {full}.", "dimensions")
    if wanted != full and not matryoshka(path):
        raise _bad(
            f"This model does not support 'dimensions' below its size ({full}).", "dimensions"
        )
    return wanted


@functools.lru_cache(maxsize=8)
def matryoshka(path: Path) -> bool:
    """Whether config.json marks the model as trained for truncated vectors."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("matryoshka_dimensions"))


def _cut(vector: list[float], dimensions: int) -> list[float]:
    if dimensions >= len(vector):
        return vector
    head = np.asarray(vector[:dimensions], dtype=np.float64)
    norm = float(np.linalg.norm(head))
    return [float(x) for x in (head / norm if norm > 0 else head)]


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    # base64 is the little-endian float32 bytes, as the openai client decodes it.
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


def _ids(values: list[Any]) -> list[int] | None:
    """Token ids (JSON integers), or None when one is not."""
    ids = [as_int(x) for x in values]
    return None if None in ids else [i for i in ids if i is not None]


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")
