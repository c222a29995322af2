"""A stub mlxctl daemon: the admin endpoints the MCP server calls, recording each call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SLOTS = [
    {
        "port": 8100,
        "alias": "jerry-xl",
        "desired": "qwen3-4b",
        "live": {"pid": 42, "model": "qwen3-4b", "started_at": 1.0, "healthy": True},
        "drift": [],
    },
    {"port": 8101, "alias": "jerry-l", "desired": None, "live": None, "drift": []},
]
MODEL = {"model": "tiny", "state": "ready", "pid": 7, "estimated_bytes": 1000}


@dataclass
class StubDaemon:
    url: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    keys: set[str | None] = field(default_factory=set)  # the Authorization headers seen


def _app(stub: StubDaemon) -> Starlette:
    async def record(request: Request) -> JSONResponse:
        body = await request.json() if request.method == "POST" else None
        stub.calls.append((request.method, request.url.path, body))
        stub.keys.add(request.headers.get("authorization"))
        path = request.url.path
        if path == "/api/admin/slots":
            return JSONResponse({"slots": SLOTS})
        if path == "/api/admin/ps":
            return JSONResponse({"models": [MODEL]})
        if path == "/api/admin/status":
            status = {"budget": "75%", "budget_bytes": 100, "used_bytes": 60, "free_bytes": 40}
            return JSONResponse({**status, "models": [{**MODEL, "measured": {"total_bytes": 9}}]})
        if path == "/api/admin/slots/verify":
            return JSONResponse({"ok": True, "problems": []})
        if path == "/v1/models":
            return JSONResponse({"object": "list", "data": [{"id": "tiny", "object": "model"}]})
        if path == "/api/admin/slots/load" and body and body.get("slot") == "nope":
            return JSONResponse({"error": {"message": "no slot 'nope'"}}, status_code=404)
        return JSONResponse({"ok": True, "path": path, "body": body})

    paths = ["/api/admin/slots", "/api/admin/ps", "/api/admin/status", "/v1/models"]
    paths.append("/api/admin/slots/verify")
    posts = ["load", "unload", "unload-all", "reconcile"]
    routes = [Route(p, record) for p in paths]
    routes += [Route(f"/api/admin/slots/{p}", record, methods=["POST"]) for p in posts]
    return Starlette(routes=routes)


@contextmanager
def stub_daemon() -> Iterator[StubDaemon]:
    stub = StubDaemon()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(stub), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    stub.url = f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
