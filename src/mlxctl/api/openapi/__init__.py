"""`GET /openapi.json`: the OpenAPI 3.1 document of every route the daemon serves.

One module per dialect, mirroring `api/`, declares its `PATHS` and `SCHEMAS`
with the words of `build.py`:

    openai.py     /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models…
    responses.py  /v1/responses, /v1/responses/{id}, /v1/responses/{id}/input_items
    rerank.py     /v1/rerank, /rerank, /v2/rerank
    anthropic.py  /v1/messages, /v1/messages/count_tokens
    ollama.py     /, /api/version, /api/tags, /api/ps, /api/show, /api/copy, /api/delete,
                  /api/pull, /api/chat, /api/generate, /api/embed, /api/embeddings
    ollama_store.py  /api/create, /api/push, /api/blobs/{digest}
    llamacpp.py   /models, /models/load, /models/unload, /models/sse (llama.cpp's router)
    admin.py      /health, /openapi.json, /metrics, /api/admin/…, /api/admin/slots…
    operations.py /api/admin/models…, /api/admin/registry…, /api/admin/store… (written
                  from `mlxctl.operations.OPERATIONS`: a new operation needs nothing here)
    dashboard.py  /ui/… (no key: the page and its login), /api/admin/events, …/jobs,
                  …/requests, …/gateway/litellm

To add a route: add its `Route` in `api/<dialect>/`, then an entry in that
dialect's `PATHS` here, built with `operation(...)` (and any new schema in its
`SCHEMAS`). `tests/api/openapi/test_document.py` fails until both agree; the
fuzz run (`tests/api/openapi/test_fuzz.py`) then sends it generated requests.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlxctl import __version__
from mlxctl.api.openapi import (
    admin,
    anthropic,
    dashboard,
    llamacpp,
    ollama,
    ollama_store,
    openai,
    operations,
    rerank,
    responses,
)
from mlxctl.api.openapi.build import Paths, Schema
from mlxctl.settings import Settings

_MODULES = (
    *(openai, responses, rerank, anthropic, ollama, ollama_store, llamacpp),
    *(admin, operations, dashboard),
)
# (path, method) the app serves that the document leaves out, with the reason in the module.
LEFT_OUT = ollama.LEFT_OUT
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "MLXCTL_API_KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}
_DESCRIPTION = (
    "mlxctl's daemon: the OpenAI, Anthropic and Ollama APIs over the registered models, "
    "llama.cpp's router model routes, and mlxctl's own admin API. With MLXCTL_API_KEY set, "
    "every route but /health and the dashboard's page (/ui/) needs the key, as "
    "`Authorization: Bearer <key>` or "
    "`x-api-key: <key>` (or, from the dashboard's own page, its session cookie). Errors "
    "use the envelope of the route's dialect."
)


def document(settings: Settings) -> dict[str, Any]:
    """This daemon's document: its slot table, and the key required when one is set."""
    paths: Paths = {}
    schemas: dict[str, Schema] = {}
    for module in _MODULES:
        overlap = paths.keys() & module.PATHS.keys() or schemas.keys() & module.SCHEMAS.keys()
        assert not overlap, f"{module.__name__} declares {sorted(overlap)} again"
        paths.update(module.PATHS)
        schemas.update(module.SCHEMAS)
    schemas["SlotRef"] = admin.slot_ref(settings)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "mlxctl", "version": __version__, "description": _DESCRIPTION},
        "tags": [
            {"name": name} for name in ("OpenAI", "Anthropic", "Ollama", "llama.cpp", "Admin")
        ],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }
    if settings.api_key:
        doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc


def routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]


async def openapi_json(request: Request) -> Response:
    cached: bytes | None = getattr(request.app.state, "openapi", None)
    if cached is None:
        doc = document(request.app.state.settings)
        cached = json.dumps(doc, separators=(",", ":")).encode()
        request.app.state.openapi = cached
    return Response(cached, media_type="application/json")
