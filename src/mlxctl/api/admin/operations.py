"""The registry and store operations as admin routes: the daemon is their one writer.

One route per `mlxctl.operations.OPERATIONS` entry (see that package for the list):
the JSON body is the operation's arguments (unknown fields are refused), the answer
its result. Streaming operations (pull, push, create, store verify) answer NDJSON:
one line per progress event (`{"progress": "start"|"advance"|"finish", "key", ...}`),
then `{"result": {...}}`, or `{"error": {...}, "status": N}` if it failed after the
first line; a failure before any progress still gets a real status.

Errors use the OpenAI envelope with the next step in `error.hint`
(`api/errors.admin_error_body`). The work runs in a thread on the daemon's own
registry and store; `rm` unloads the model (on-demand and slots) before deleting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlxctl.api.admin.progress import progress_events
from mlxctl.api.errors import APIError, admin_error_body, admin_error_response
from mlxctl.httpguard import json_object
from mlxctl.model_options import ModelOptions
from mlxctl.operations import OPERATIONS, Args, Context, Operation
from mlxctl.registry import ModelRecord, Registry
from mlxctl.store.progress import NoProgress, Progress


def routes() -> list[Route]:
    return [Route(op.path, _endpoint(op), methods=[op.method]) for op in OPERATIONS]


def _endpoint(op: Operation[Any]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            args = parse_args(op, await request.body())
        except Exception as e:
            return admin_error_response(e)
        if not op.streams:
            try:
                data = await asyncio.to_thread(op.run, context(request.app), args)
            except Exception as e:
                return admin_error_response(e)
            return JSONResponse(data)
        lines = _stream(op, request.app, args)
        try:
            first = await anext(lines)
        except Exception as e:
            return admin_error_response(e)
        return StreamingResponse(_chain(first, lines), media_type="application/x-ndjson")

    endpoint.__name__ = op.name.replace(".", "_")
    endpoint.__doc__ = op.summary
    return endpoint


def parse_args(op: Operation[Any], raw: bytes) -> Args:
    body = json_object(raw)
    try:
        args: Args = op.args.model_validate(body)
    except ValidationError as e:
        problem = e.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        if problem["type"] == "missing":
            message = f"'{field}' is required"
        elif problem["type"] == "extra_forbidden":
            message = f"{op.path} does not take the field '{field}'"
        else:
            message = f"'{field}': {problem['msg']}"
        raise APIError(400, message, param=field, code="invalid_value") from None
    return args


def context(app: Starlette, progress: Progress | None = None) -> Context:
    """The daemon's registry and store; `stop_serving` unloads through its scheduler."""
    loop = asyncio.get_running_loop()

    def stop_serving(record: ModelRecord) -> list[str]:
        # Called from the operation's thread: the unload itself runs on the event loop.
        return asyncio.run_coroutine_threadsafe(unload_everywhere(app, record), loop).result()

    async def options_now(record: ModelRecord) -> ModelOptions:
        return app.state.config.options.for_model(record)  # type: ignore[no-any-return]

    def options(record: ModelRecord) -> ModelOptions:
        # The options source lives on the event loop (a reload swaps it there).
        return asyncio.run_coroutine_threadsafe(options_now(record), loop).result()

    registry: Registry = app.state.registry
    return Context(
        app.state.settings,
        registry,
        progress or NoProgress(),
        stop_serving=stop_serving,
        over_api=True,
        options=options,
    )


async def unload_everywhere(app: Starlette, record: ModelRecord) -> list[str]:
    """Stop every worker serving `record`: the slots it is assigned to or live on, and
    its on-demand worker. Returns what it stopped ("slot jerry-l on port 8101", ...)."""
    stopped: list[str] = []
    for slot in await app.state.slots.snapshot():
        live = slot.get("live") or {}
        if record.slug in (slot.get("desired"), live.get("model")):
            await app.state.slots.unload(slot["port"])
            stopped.append(f"slot {slot['alias']} on port {slot['port']}")
    if await app.state.scheduler.unpin(record.slug):  # whatever is left, pinned or not
        stopped.append("on-demand worker")
    return stopped


def events(op: Operation[Any], app: Starlette, args: Args) -> AsyncIterator[dict[str, Any]]:
    """Run `op` in a thread: its progress events, then `{"result": ...}` (see api/progress)."""
    return progress_events(work_of(op, app, args))


def work_of(op: Operation[Any], app: Starlette, args: Args) -> Callable[[Progress], Any]:
    """`op` on the daemon's registry and store, reporting to the progress it is given;
    call on the event loop, run the result in a thread."""
    ctx = context(app)

    def work(progress: Progress) -> Any:
        ctx.progress = progress
        return op.run(ctx, args)

    return work


async def _stream(op: Operation[Any], app: Starlette, args: Args) -> AsyncIterator[bytes]:
    started = False
    try:
        async for event in events(op, app, args):
            started = True
            yield _line(event)
    except Exception as e:
        if not started:
            raise  # no byte sent yet: the endpoint answers with a real status
        error, body = admin_error_body(e)
        yield _line({**body, "status": error.status})


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for line in rest:
        yield line


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, default=str).encode() + b"\n"
