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

import anyio.to_thread
from starlette.responses import Response

from mlxctl.api.admin.operations import context, work_of
from mlxctl.api.body import bool_field, name_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.errors import APIError
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.api.ollama.progress import answer
from mlxctl.library import catalog, transfer
from mlxctl.operations.store import PUSH, PushArgs, check_insecure

_FIELDS = {"model", "name", "stream", "insecure"}


@OLLAMA.handler(fields=_FIELDS)
async def push(incoming: Incoming) -> Response:
    body, app = incoming.body, incoming.request.app
    reference = name_field(body, "model", "name")
    args = PushArgs(
        model=local_name(reference),
        target=reference,
        insecure=bool_field(body, "insecure", False),
    )
    stream = bool_field(body, "stream", True)
    ctx = context(app)
    check_insecure(ctx, args)
    # A missing model is a real 404, not an error line after a 200.
    await anyio.to_thread.run_sync(
        lambda: catalog.find(ctx.registry, ctx.layout, args.model, exact=True)
    )
    work = work_of(PUSH, app, args)
    last = ("pushing manifest",)
    return await answer(work, stream=stream, verb="pushing", first="retrieving manifest", last=last)


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
