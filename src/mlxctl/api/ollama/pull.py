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

from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.admin.operations import context, events
from mlxctl.api.body import bool_field, name_field
from mlxctl.api.errors import APIError
from mlxctl.api.ollama.errors import error_response
from mlxctl.api.ollama.progress import progress_lines
from mlxctl.httpguard import json_object
from mlxctl.library import transfer
from mlxctl.operations.store import PULL, PullArgs, check_insecure

_FIELDS = {"model", "name", "stream", "insecure", "replace"}


async def pull(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise APIError(400, f"/api/pull does not support the field '{unknown[0]}'")
        args = PullArgs(
            reference=name_field(body, "model", "name"),
            insecure=bool_field(body, "insecure", False),
            replace=bool_field(body, "replace", False),
        )
        stream = bool_field(body, "stream", True)
        ctx = context(request.app)
        check_insecure(ctx, args)
        # Refusals that need no download get a real status (409, 400), not an error line.
        await anyio.to_thread.run_sync(
            lambda: transfer.check_pull(ctx.registry, args.reference, replace=args.replace)
        )
    except Exception as e:
        return error_response(e)
    if stream:
        return StreamingResponse(_pull_lines(request.app, args), media_type="application/x-ndjson")
    try:  # not streamed: a failed pull answers with its own status (400, 404, 409...)
        result = await anyio.to_thread.run_sync(PULL.run, context(request.app), args)
    except Exception as e:
        return error_response(e)
    return JSONResponse({"status": "success", "model": result["model"]})


def _pull_lines(app: Starlette, args: PullArgs) -> AsyncIterator[bytes]:
    last = ("verifying sha256 digest", "writing manifest")
    return progress_lines(events(PULL, app, args), "pulling", first="pulling manifest", last=last)
