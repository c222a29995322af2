"""Store work with Ollama's NDJSON progress: what `/api/pull`, `/api/push` and `/api/create` send.

`answer(work, stream=...)` is their one ending: the lines below, or the success object.

An operation's progress events (`api/admin/operations.events`) become the `{"status", "digest",
"total", "completed"}` lines Ollama clients draw, between the fixed opening and closing
statuses of each route, ending with `{"status": "success", ...}`, or with an
`{"error"}` line when the work fails after the first line went out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio.to_thread
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.admin.progress import progress_events
from mlxctl.api.ollama.errors import error_line
from mlxctl.store.progress import NoProgress, Progress


async def answer(
    work: Callable[[Progress], dict[str, Any]],
    *,
    stream: bool,
    verb: str,
    first: str,
    last: Sequence[str] = (),
) -> Response:
    """Run `work` in a thread: its progress as NDJSON lines, or (not streamed) its end,
    `{"status": "success", "model"}`; a failure then raises, for a real status."""
    if stream:
        events = progress_events(work)
        lines = progress_lines(events, verb, first=first, last=last)
        return StreamingResponse(lines, media_type="application/x-ndjson")
    result = await anyio.to_thread.run_sync(work, NoProgress())
    return JSONResponse({"status": "success", "model": result.get("model")})


async def progress_lines(
    events: AsyncIterator[dict[str, Any]],
    verb: str,
    *,
    first: str,
    last: Sequence[str] = (),
) -> AsyncIterator[bytes]:
    """`first`, a line per event ("<verb> <file>"), the `last` statuses, then success
    with the result's `model`."""
    totals: dict[str, int | None] = {}
    yield encode({"status": first})
    try:
        async for event in events:
            if "result" in event:
                result = event["result"]
            else:
                yield encode(ollama_line(event, totals, verb))
    except Exception as e:
        yield error_line(e)
        return
    for status in last:
        yield encode({"status": status})
    yield encode({"status": "success", "model": result.get("model")})


def ollama_line(event: dict[str, Any], totals: dict[str, int | None], verb: str) -> dict[str, Any]:
    """A store progress event as the `{"status", "digest", "total", "completed"}` Ollama sends."""
    key = event["key"]
    if event["progress"] == "start":
        totals[key] = event["total"]
        total, done = event["total"], event["done"]
        return {
            "status": f"{verb} {event['label']}",
            "digest": key,
            "total": total,
            "completed": done,
        }
    if event["progress"] == "advance":
        total = totals.get(key) if event["total"] is None else event["total"]
        return {
            "status": f"{verb} {key}",
            "digest": key,
            "total": total,
            "completed": event["done"],
        }
    return {"status": f"{event['note'] or 'done'} {key}", "digest": key}


def encode(line: object) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"
