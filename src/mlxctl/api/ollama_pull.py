"""`POST /api/pull`: a store pull (Hugging Face or OCI) with Ollama's NDJSON progress.

The pull is the admin API's own (`operations.store.PULL`, on the daemon's registry and
store), run in a thread (`api/progress.py`); its progress events become `{"status",
"digest", "total", "completed"}` lines as Ollama clients expect, ending with
`{"status": "success"}` or an `{"error"}` line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlxctl.api.admin_ops import events
from mlxctl.api.body import json_object
from mlxctl.api.errors import APIError
from mlxctl.api.ollama_errors import error_line, error_response
from mlxctl.operations.store import PULL, PullArgs

_FIELDS = {"model", "name", "stream", "insecure"}


async def pull(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise APIError(400, f"/api/pull does not support the field '{unknown[0]}'")
        reference = body.get("model") or body.get("name")
        if not isinstance(reference, str) or not reference.strip():
            raise APIError(400, "You must provide a model to pull.")
        args = PullArgs(reference=reference.strip(), insecure=bool(body.get("insecure", False)))
    except Exception as e:
        return error_response(e)
    lines = _pull_lines(request.app, args)
    if body.get("stream", True):
        return StreamingResponse(lines, media_type="application/x-ndjson")
    last: Any = None
    async for line in lines:
        last = line
    data = json.loads(last)
    status = 200 if "error" not in data else 500
    return JSONResponse(data, status_code=status)


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
