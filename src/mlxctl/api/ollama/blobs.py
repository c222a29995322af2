"""`HEAD`/`POST /api/blobs/:digest`: Ollama's upload of model files into the store.

    HEAD /api/blobs/sha256:<hex>   200 when the store holds the blob, else 404
    POST /api/blobs/sha256:<hex>   the raw file: 201 stored, 200 already there,
                                   400 when the bytes hash to another digest

The body is the one raw (non-JSON) body the daemon takes: `BLOB_UPLOAD` tells the
guard to let it through unbuffered, capped at MLXCTL_MAX_BLOB_BYTES. It is streamed
into a temp file in `blobs/` while hashed (never held in memory) and renamed to its
digest only when the digest matches, so a failed or cut upload stores nothing.
`/api/create` then names uploaded blobs in `files`/`adapters` (`create.py`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import anyio.from_thread
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlxctl.api.errors import APIError
from mlxctl.api.ollama.errors import error_response
from mlxctl.httpguard import RawBodyRoute
from mlxctl.library import catalog
from mlxctl.settings import Settings
from mlxctl.store.content.blobs import CorruptBlob, check_digest

PATH = "/api/blobs/{digest}"


def upload_routes(settings: Settings) -> tuple[RawBodyRoute, ...]:
    """The guard's exemption: raw bytes, no JSON Content-Type, up to the blob cap. Every
    method with a body, so a wrong one gets the router's 405, not the JSON guard's 415."""
    path = re.compile(r"/api/blobs/[^/]+")
    cap = settings.max_blob_bytes
    return tuple(
        RawBodyRoute(method, path, cap, "MLXCTL_MAX_BLOB_BYTES")
        for method in ("POST", "PUT", "PATCH", "DELETE")
    )


def routes() -> list[Route]:
    # One route for both methods: a 405 then lists both in `Allow`.
    return [Route(PATH, blob, methods=["HEAD", "POST"])]


async def blob(request: Request) -> Response:
    return await (head if request.method == "HEAD" else upload)(request)


def digest_of(text: str) -> str:
    """`sha256:<hex>` (as the ollama client sends it) or `sha256-<hex>` (as Ollama stores it)."""
    try:
        return check_digest(re.sub(r"^sha256-", "sha256:", text))
    except Exception:
        raise APIError(
            400, f"invalid digest {text!r}: expected sha256:<64 lowercase hex digits>"
        ) from None


async def head(request: Request) -> Response:
    try:
        digest = digest_of(request.path_params["digest"])
    except APIError as e:
        return Response(status_code=e.status)
    layout = catalog.open_store(request.app.state.settings)
    return Response(status_code=200 if layout.blobs.has(digest) else 404)


async def upload(request: Request) -> Response:
    try:
        digest = digest_of(request.path_params["digest"])
        layout = catalog.open_store(request.app.state.settings)
        if layout.blobs.has(digest):
            return Response(status_code=200)  # as Ollama: the body is not needed
        chunks = _blocking(request.stream())
        try:
            await anyio.to_thread.run_sync(lambda: layout.blobs.write(chunks, expected=digest))
        except CorruptBlob:
            raise APIError(
                400,
                f"digest mismatch: the uploaded bytes do not hash to {digest}; nothing was stored",
            ) from None
    except Exception as e:
        return error_response(e)
    return Response(status_code=201)


def _blocking(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The request body for a worker thread: each chunk fetched on the event loop."""

    async def next_chunk() -> bytes | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk
