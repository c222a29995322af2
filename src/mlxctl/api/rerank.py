"""Rerank: a query and documents, scored by a cross-encoder model's worker.

    POST /v1/rerank    POST /rerank    POST /v2/rerank    (one body, three addresses)

The Cohere/Jina shape that llama.cpp server and LocalAI serve, at the addresses their
clients call; the body goes to the worker's `/v1/rerank` as the OpenAI dialect sends
its own (`keep_alive` taken out), and errors come back in the OpenAI envelope.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlxctl.api.openai import _proxy

PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")


def routes() -> list[Route]:
    return [Route(path, rerank, methods=["POST"]) for path in PATHS]


async def rerank(request: Request) -> Response:
    return await _proxy(request, "/v1/rerank")
