"""The OpenAI dialect: the worker's own API, in front of every registered model.

    POST /v1/chat/completions     POST /v1/completions     (JSON or SSE, proxied)
    POST /v1/embeddings           (JSON, proxied)
    POST /v1/rerank, /rerank, /v2/rerank   (JSON, proxied to a cross-encoder's /v1/rerank:
                                            the Cohere/Jina shape, docs/rerank.md)
    GET  /v1/models               GET  /v1/models/{model}  (registered models)

The body goes to the worker byte for byte, with one exception: mlxctl's extra
field `keep_alive` (how long the model stays loaded after this request:
`"10m"`, `300`, `-1` forever, `0` unload after it) is taken out first. With the
official client: `client.chat.completions.create(..., extra_body={"keep_alive": "1h"})`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.body import keep_alive_field
from mlxctl.api.dialect import Dialect, Endpoint, Incoming
from mlxctl.api.errors import error_event, error_response
from mlxctl.capabilities import capabilities
from mlxctl.errors import NotFound
from mlxctl.peers import Listed, listed
from mlxctl.registry import ModelRecord
from mlxctl.router import Call, Router
from mlxctl.scheduler import DEFAULT, KeepAlive

KEEP_ALIVE_FIELD = "keep_alive"
# Where llama.cpp server, LocalAI and Cohere/Jina clients look for a reranker.
RERANK_PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")

OPENAI = Dialect("openai", error_response, error_event, "text/event-stream")


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        *(Route(path, rerank, methods=["POST"]) for path in RERANK_PATHS),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    ]


def _proxy(path: str) -> Endpoint:
    """The route that passes a request on to the model's worker at `path`."""

    @OPENAI.handler()
    async def proxy(incoming: Incoming) -> Response:
        record, raw, body = incoming.resolve(), incoming.raw, incoming.body
        keep_alive: KeepAlive = DEFAULT
        if KEEP_ALIVE_FIELD in body:
            keep_alive = keep_alive_field(body.pop(KEEP_ALIVE_FIELD))
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        call = Call(record, path, raw, keep_alive, incoming.exchange.request_id)
        return await incoming.router.forward(call, OPENAI, incoming.exchange)

    return proxy


chat_completions = _proxy("/v1/chat/completions")
completions = _proxy("/v1/completions")
embeddings = _proxy("/v1/embeddings")
rerank = _proxy("/v1/rerank")


async def list_models(request: Request) -> Response:
    router: Router = request.app.state.router
    store_root = request.app.state.settings.store_dir
    records = router.registry.list()
    # Capabilities read every model's files (GGUF metadata too): off the event loop.
    cards = await anyio.to_thread.run_sync(lambda: [model_card(r, store_root) for r in records])
    by_slug = {card["id"]: card for card in cards}
    for alias, members, first in request.app.state.config.listed(records):
        cards.append({**by_slug[first.slug], "id": alias, "alias_of": members})
    names = [card["id"] for card in cards]
    for remote in listed(request.app.state.peers, names, request.headers):
        cards.append(peer_card(remote))
    return JSONResponse({"object": "list", "data": cards})


def peer_card(remote: Listed) -> dict[str, Any]:
    """A peer's model in /v1/models (what its registry row says; its files are there)."""
    record = remote.record
    return {
        "id": remote.name,
        "object": "model",
        "created": 0,
        "owned_by": remote.host,
        "repo_id": record.repo_id,
        "context_length": record.context_length,
        "host": remote.host,
    }


async def retrieve_model(request: Request) -> Response:
    router: Router = request.app.state.router
    name = request.path_params["model"]
    try:
        record = router.resolve(name)
    except NotFound as e:
        names = [r.slug for r in router.registry.list()]
        remote = listed(request.app.state.peers, names, request.headers)
        found = next((m for m in remote if m.name == name), None)
        return OPENAI.error_response(e) if found is None else JSONResponse(peer_card(found))
    except Exception as e:
        return OPENAI.error_response(e)
    store_root = request.app.state.settings.store_dir
    return JSONResponse(await anyio.to_thread.run_sync(model_card, record, store_root))


def model_card(record: ModelRecord, store_root: Path) -> dict[str, Any]:
    try:
        created = int(os.stat(record.cache_path).st_mtime)
    except OSError:
        created = 0
    return {
        "id": record.slug,
        "object": "model",
        "created": created,
        "owned_by": "mlxctl",
        "repo_id": record.repo_id,
        "context_length": record.context_length,
        "capabilities": capabilities(record, store_root=store_root),
    }
