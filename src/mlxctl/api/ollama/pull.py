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

import anyio.to_thread
from starlette.responses import Response

from mlxctl.api.admin.operations import context, work_of
from mlxctl.api.body import bool_field, name_field
from mlxctl.api.dialect import Incoming
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.api.ollama.progress import answer
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
    last = ("verifying sha256 digest", "writing manifest")
    work = work_of(PULL, app, args)
    return await answer(work, stream=stream, verb="pulling", first="pulling manifest", last=last)
