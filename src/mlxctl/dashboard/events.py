"""`GET /api/admin/events`: the daemon's state as server-sent events, for the dashboard.

Every second (`?interval=` seconds, 0.2 to 60) one `state` event whose data is
`{"status": <GET /api/admin/status>, "slots": [...], "jobs": [...], "requests":
[new access-log lines], "last": N}`. `?after=N` starts the request lines after line N
(what the page saw before a reload); each event carries only lines not yet sent. The
stream ends when the client goes away or the daemon drains. The slots are read at most
every few seconds for all streams together (a read asks who listens on every slot port).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mlxctl.api.admin.status import status_data
from mlxctl.api.errors import APIError, error_response
from mlxctl.dashboard.jobs import board

PATH = "/api/admin/events"
MIN_INTERVAL, MAX_INTERVAL = 0.2, 60.0
SLOTS_EVERY = 5.0


def routes() -> list[Route]:
    return [Route(PATH, stream_events, methods=["GET"])]


async def stream_events(request: Request) -> Response:
    try:
        interval = _number(request.query_params.get("interval", "1"), "interval")
        after = int(_number(request.query_params.get("after", "0"), "after"))
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise APIError(
                400,
                f"'interval' must be from {MIN_INTERVAL} to {MAX_INTERVAL} seconds",
                param="interval",
                code="invalid_value",
            )
    except APIError as e:
        return error_response(e)
    return StreamingResponse(
        _events(request.app, interval, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def snapshot(app: Starlette, after: int) -> dict[str, Any]:
    """One event's data: what the overview, slots, jobs and request tail show."""
    status, slots = await asyncio.gather(status_data(app), _slots(app))
    log = app.state.dashboard.requests
    return {
        "status": status,
        "slots": slots,
        "jobs": board(app).list(),
        "requests": log.since(after),
        "last": log.last,
    }


async def _slots(app: Starlette) -> list[dict[str, Any]]:
    kept = app.state.dashboard
    if kept.slots is None or time.monotonic() - kept.slots_at >= SLOTS_EVERY:
        kept.slots = await app.state.slots.snapshot()
        kept.slots_at = time.monotonic()
    slots: list[dict[str, Any]] = kept.slots
    return slots


async def _events(app: Starlette, interval: float, after: int) -> AsyncIterator[bytes]:
    while not getattr(app.state, "draining", False):
        data = await snapshot(app, after)
        after = data["last"]
        text = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
        yield f"event: state\ndata: {text}\n\n".encode()
        await asyncio.sleep(interval)


def _number(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value < 0:  # NaN or negative
        raise APIError(400, f"'{name}' must be a number", param=name, code="invalid_value")
    return value
