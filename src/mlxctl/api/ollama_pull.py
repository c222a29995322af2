"""`POST /api/pull`: a store pull (Hugging Face or OCI) with Ollama's NDJSON progress.

The pull itself is `library.transfer.pull`, blocking, so it runs in a thread; its
`Progress` calls become `{"status", "digest", "total", "completed"}` lines as
Ollama clients expect, ending with `{"status": "success"}` or an `{"error"}` line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.body import bool_field, json_object, name_field
from mlxctl.api.errors import APIError
from mlxctl.api.ollama_errors import error_line, error_response
from mlxctl.library import catalog, transfer
from mlxctl.registry import open_registry
from mlxctl.settings import Settings
from mlxctl.store.progress import Progress

_FIELDS = {"model", "name", "stream", "insecure"}
_DONE = object()


class _Lines:
    """A `Progress` sink that queues Ollama status lines for the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
        self.loop = loop
        self.queue = queue
        self.totals: dict[str, int | None] = {}

    def _put(self, line: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, line)

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        self.totals[key] = total
        self._put({"status": f"pulling {label}", "digest": key, "total": total, "completed": done})

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        total = self.totals.get(key) if total is None else total
        self._put({"status": f"pulling {key}", "digest": key, "total": total, "completed": done})

    def finish(self, key: str, note: str = "") -> None:
        self._put({"status": f"{note or 'done'} {key}", "digest": key})


async def pull(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise APIError(400, f"/api/pull does not support the field '{unknown[0]}'")
        reference = name_field(body, "model", "name")
        stream, insecure = bool_field(body, "stream", True), bool_field(body, "insecure", False)
    except Exception as e:
        return error_response(e)
    if stream:
        lines = _pull_lines(reference, insecure=insecure)
        return StreamingResponse(lines, media_type="application/x-ndjson")
    try:
        slug = await asyncio.to_thread(_pull, reference, insecure, None)
    except Exception as e:  # the failure's own status: 400 bad reference, 404, 503 unreachable
        return error_response(e)
    return JSONResponse({"status": "success", "model": slug})


def _pull(reference: str, insecure: bool, progress: Progress | None) -> str:
    """The pull itself (blocking): the registered model's slug."""
    settings = Settings.from_env()
    registry = open_registry(settings)
    try:
        result = transfer.pull(
            registry,
            catalog.open_store(settings),
            settings,
            reference,
            insecure=insecure,
            progress=progress,
        )
        return result.record.slug
    finally:
        registry.db.close()


async def _pull_lines(reference: str, *, insecure: bool) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    task = loop.run_in_executor(None, _pull, reference, insecure, _Lines(loop, queue))
    task.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, _DONE))
    yield _encode({"status": "pulling manifest"})
    while (item := await queue.get()) is not _DONE:
        yield _encode(item)
    try:
        slug = task.result()
    except Exception as e:
        yield error_line(e)
        return
    yield _encode({"status": "verifying sha256 digest"})
    yield _encode({"status": "writing manifest"})
    yield _encode({"status": "success", "model": slug})


def _encode(line: object) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"
