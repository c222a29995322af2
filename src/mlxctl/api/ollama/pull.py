"""`POST /api/pull`: a store pull (Hugging Face or OCI) with Ollama's NDJSON progress.

The pull is the admin API's own (`operations.store.PULL`, on the daemon's registry and
store), run in a thread (`api/admin/progress.py`); its progress events become `{"status",
"digest", "total", "completed"}` lines as Ollama clients expect, ending with
`{"status": "success"}` or an `{"error"}` line.

Besides Ollama's fields (`model`/`name`, `stream`, `insecure`) it takes mlxctl's
`"replace": true`: take the name of a store model that came from another source
(otherwise refused, 409). `"insecure": true` (a plain-http registry) is refused
unless the daemon runs with MLXCTL_ALLOW_INSECURE_PULL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.admin.operations import context, events
from mlxctl.api.body import bool_field, name_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.ollama.errors import OLLAMA, error_line
from mlxctl.library import transfer
from mlxctl.operations.store import PULL, PullArgs, check_insecure

_FIELDS = {"model", "name", "stream", "insecure", "replace"}


@OLLAMA.handler(fields=_FIELDS)
async def pull(incoming: Incoming) -> Response:
    body, app = incoming.body, incoming.request.app
    args = PullArgs(
        reference=name_field(body, "model", "name"),
        insecure=bool_field(body, "insecure", False),
        replace=bool_field(body, "replace", False),
    )
    stream = bool_field(body, "stream", True)
    ctx = context(app)
    check_insecure(ctx, args)
    # Refusals that need no download get a real status (409, 400), not an error line.
    await anyio.to_thread.run_sync(
        lambda: transfer.check_pull(ctx.registry, args.reference, replace=args.replace)
    )
    if stream:
        return StreamingResponse(_pull_lines(app, args), media_type=OLLAMA.media_type)
    # Not streamed: a failed pull answers with its own status (400, 404, 409...).
    result = await anyio.to_thread.run_sync(PULL.run, context(app), args)
    return JSONResponse({"status": "success", "model": result["model"]})


async def _pull_lines(app: Starlette, args: PullArgs) -> AsyncIterator[bytes]:
    totals: dict[str, int | None] = {}
    yield _encode({"status": "pulling manifest"})
    try:
        async for event in events(PULL, app, args):
            if "result" in event:
                slug = event["result"]["model"]
            else:
                yield _encode(_ollama_line(event, totals))
    except Exception as e:
        yield error_line(e)
        return
    yield _encode({"status": "verifying sha256 digest"})
    yield _encode({"status": "writing manifest"})
    yield _encode({"status": "success", "model": slug})


def _ollama_line(event: dict[str, Any], totals: dict[str, int | None]) -> dict[str, Any]:
    """A store progress event as the `{"status", "digest", "total", "completed"}` Ollama sends."""
    key = event["key"]
    if event["progress"] == "start":
        totals[key] = event["total"]
        label = event["label"]
        total, done = event["total"], event["done"]
        return {"status": f"pulling {label}", "digest": key, "total": total, "completed": done}
    if event["progress"] == "advance":
        total = totals.get(key) if event["total"] is None else event["total"]
        return {
            "status": f"pulling {key}",
            "digest": key,
            "total": total,
            "completed": event["done"],
        }
    return {"status": f"{event['note'] or 'done'} {key}", "digest": key}


def _encode(line: object) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"
