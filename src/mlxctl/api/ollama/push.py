"""`POST /api/push`: a store model to an OCI registry, with Ollama's NDJSON progress.

Ollama pushes a model under its own name, registry included (`host/namespace/name:tag`).
mlxctl's store names carry no registry, so `model` is the registry reference and the
model pushed is the store model whose name is its last part, the name a pull of that
reference gives: `127.0.0.1:5000/team/pirate:v1` pushes `pirate:v1`, and pulling it
back gives `pirate:v1` again. The push itself is the admin API's
(`operations.store.PUSH`): only blobs the registry lacks are sent, the manifest last.

Fields: `model` (or `name`), `stream` (default true), `insecure` (a plain-http
registry: refused unless the daemon runs with MLXCTL_ALLOW_INSECURE_PULL; loopback
registries use http regardless).
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
from mlxctl.library import catalog, transfer
from mlxctl.operations.store import PUSH, PushArgs, check_insecure

_FIELDS = {"model", "name", "stream", "insecure"}


async def push(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise APIError(400, f"/api/push does not support the field '{unknown[0]}'")
        reference = name_field(body, "model", "name")
        args = PushArgs(
            model=str(local_name(reference)),
            target=reference,
            insecure=bool_field(body, "insecure", False),
        )
        stream = bool_field(body, "stream", True)
        ctx = context(request.app)
        check_insecure(ctx, args)
        # A missing model is a real 404, not an error line after a 200.
        await anyio.to_thread.run_sync(
            lambda: catalog.find(ctx.registry, ctx.layout, args.model, exact=True)
        )
    except Exception as e:
        return error_response(e)
    if stream:
        return StreamingResponse(_push_lines(request.app, args), media_type="application/x-ndjson")
    try:
        await anyio.to_thread.run_sync(PUSH.run, context(request.app), args)
    except Exception as e:
        return error_response(e)
    return JSONResponse({"status": "success"})


def local_name(reference: str) -> str:
    """The store model a push of `reference` sends: the name a pull of it would give."""
    target = transfer.pull_target(reference)
    if target.oci is None:
        raise APIError(
            400,
            f"'{reference}' names no registry: /api/push takes REGISTRY/NAMESPACE/MODEL[:TAG] "
            "and pushes the store model MODEL[:TAG]",
        )
    return str(target.name)


def _push_lines(app: Starlette, args: PushArgs) -> AsyncIterator[bytes]:
    lines = events(PUSH, app, args)
    return progress_lines(lines, "pushing", first="retrieving manifest", last=("pushing manifest",))
