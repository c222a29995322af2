"""`POST /api/pull`: a store pull (Hugging Face or OCI) with Ollama's NDJSON progress.

The pull itself is `library.transfer.pull`, blocking, so it runs in a thread; its
`Progress` calls become `{"status", "digest", "total", "completed"}` lines as
Ollama clients expect, ending with `{"status": "success"}` or an `{"error"}` line.

Besides Ollama's fields (`model`/`name`, `stream`, `insecure`) it takes mlxctl's
`"replace": true`: take the name of a store model that came from another source
(otherwise refused, 409). `"insecure": true` (a plain-http registry) is refused
unless the daemon runs with MLXCTL_ALLOW_INSECURE_PULL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.body import json_object
from mlxctl.api.errors import APIError
from mlxctl.api.ollama_errors import error_line, error_response
from mlxctl.library import catalog, transfer
from mlxctl.registry import Registry, with_registry
from mlxctl.settings import Settings
from mlxctl.store.progress import Progress

_FIELDS = {"model", "name", "stream", "insecure", "replace"}
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
        reference = body.get("model") or body.get("name")
        if not isinstance(reference, str) or not reference.strip():
            raise APIError(400, "You must provide a model to pull.")
        insecure, replace = _flag(body, "insecure"), _flag(body, "replace")
        settings: Settings = request.app.state.settings
        if insecure and not settings.allow_insecure_pull:
            raise APIError(
                403,
                "plain-http registries ('insecure': true) are not allowed through the API; "
                "use `mlxctl pull --insecure`, or start the daemon with "
                "MLXCTL_ALLOW_INSECURE_PULL=1",
                code="forbidden",
            )
        # Refusals that need no download get a real status (409, 400), not an error line.
        transfer.check_pull(_registry(request), reference.strip(), replace=replace)
    except Exception as e:
        return error_response(e)
    work = _Pull(settings, reference.strip(), insecure, replace)
    if body.get("stream", True):
        return StreamingResponse(_pull_lines(work), media_type="application/x-ndjson")
    try:  # not streamed: a failed pull answers with its own status (400, 404, 409...)
        slug = await anyio.to_thread.run_sync(with_registry, settings, work.run)
    except Exception as e:
        return error_response(e)
    return JSONResponse({"status": "success", "model": slug})


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.router.registry
    return registry


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise APIError(400, f"'{name}' must be true or false")
    return value


@dataclass
class _Pull:
    """One pull, run in a worker thread with a registry connection of its own."""

    settings: Settings
    reference: str
    insecure: bool
    replace: bool
    progress: Progress | None = None

    def run(self, registry: Registry) -> str:
        result = transfer.pull(
            registry,
            catalog.open_store(self.settings),
            self.settings,
            self.reference,
            insecure=self.insecure,
            replace=self.replace,
            progress=self.progress,
        )
        return result.record.slug


async def _pull_lines(work: _Pull) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    work.progress = _Lines(loop, queue)
    task = loop.run_in_executor(None, with_registry, work.settings, work.run)
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
