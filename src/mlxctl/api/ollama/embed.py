"""Ollama's embedding endpoints, translated onto the worker's `/v1/embeddings`.

    POST /api/embed       {model, input: str | [str], truncate, dimensions, keep_alive}
                          → {model, embeddings: [[...]], total_duration, load_duration,
                             prompt_eval_count}
    POST /api/embeddings  {model, prompt, keep_alive}  → {embedding: [...]}   (the older API)

`truncate` defaults to true as in Ollama (inputs cut to the model's context); with
false an over-long input is a 400. Empty input answers an empty list without a load.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from mlxctl.api.body import bool_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.api.turn import worker_error
from mlxctl.jsonnum import as_int
from mlxctl.registry import ModelRecord
from mlxctl.router import Call
from mlxctl.scheduler import KeepAlive

__all__ = ["embed", "embeddings"]


@OLLAMA.handler()
async def embed(incoming: Incoming) -> Response:
    body = incoming.body
    record, keep_alive = incoming.resolve(), incoming.keep_alive()
    truncate, dimensions = bool_field(body, "truncate", True), body.get("dimensions")
    if dimensions is not None and not (as_int(dimensions) or 0) >= 1:
        raise _bad("'dimensions' must be a positive integer")
    inputs = body.get("input")
    if inputs is None or inputs == "" or inputs == []:
        return JSONResponse({"model": record.slug, "embeddings": []})
    if not isinstance(inputs, str | list):
        raise _bad("'input' must be a string or a list of strings")
    openai: dict[str, Any] = {"input": inputs, "truncate": truncate}
    if dimensions is not None:
        openai["dimensions"] = dimensions
    result, load_seconds = await _embed(incoming, record, openai, keep_alive)
    timings = incoming.timings
    return JSONResponse(
        {
            "model": record.slug,
            "embeddings": [item["embedding"] for item in result["data"]],
            "total_duration": timings.ns(time.perf_counter() - timings.started),
            "load_duration": timings.ns(load_seconds),
            "prompt_eval_count": int(result.get("usage", {}).get("prompt_tokens") or 0),
        }
    )


@OLLAMA.handler()
async def embeddings(incoming: Incoming) -> Response:
    body = incoming.body
    record, keep_alive = incoming.resolve(), incoming.keep_alive()
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _bad("'prompt' must be a string")
    if not prompt:
        return JSONResponse({"embedding": []})
    openai = {"input": prompt, "truncate": True}
    result, _ = await _embed(incoming, record, openai, keep_alive)
    return JSONResponse({"embedding": result["data"][0]["embedding"]})


async def _embed(
    incoming: Incoming, record: ModelRecord, openai: dict[str, Any], keep_alive: KeepAlive
) -> tuple[dict[str, Any], float]:
    """The worker's `/v1/embeddings` answer (floats) and how long the lease took."""
    router, exchange = incoming.router, incoming.exchange
    body = {**openai, "model": record.slug, "encoding_format": "float"}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    upstream = await router.open(
        Call(record, "/v1/embeddings", raw, keep_alive, exchange.request_id)
    )
    try:
        status, answer = upstream.response.status_code, await upstream.response.aread()
    finally:
        await upstream.aclose()
    try:
        data = json.loads(answer)
    except ValueError:
        data = None
    if status >= 400 or not isinstance(data, dict):
        raise worker_error(status, data)
    usage = data.get("usage")
    if isinstance(usage, dict):
        exchange.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    return data, upstream.load_seconds


def _bad(message: str) -> APIError:
    return APIError(400, message, code="invalid_value")
