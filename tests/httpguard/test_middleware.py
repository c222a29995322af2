"""`HTTPGuard` on a small app: body types and sizes, raw-body routes, streamed answers.

The real servers (daemon, worker) are tested in tests/api/test_security.py and
tests/worker/test_guard.py; this file covers what they do not have yet, such as
a raw-body upload route.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mlxctl.httpguard import GuardPolicy, HostAllowList, HTTPGuard, OriginList, RawBodyRoute
from mlxctl.openai_error import APIError

LIMIT = 1000


async def echo(request: Request) -> Response:
    return JSONResponse({"bytes": len(await request.body())})


async def upload(request: Request) -> Response:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"stored": size}, status_code=201)


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")


def respond(path: str, error: APIError) -> Response:
    return JSONResponse({"path": path, **error.body()}, status_code=error.status)


@pytest.fixture
def client() -> Iterator[TestClient]:
    policy = GuardPolicy(
        hosts=HostAllowList.parse("127.0.0.1", ""),
        origins=OriginList.parse("http://localhost:*"),
        max_body_bytes=LIMIT,
        raw_body_routes=(RawBodyRoute("POST", re.compile(r"/blobs/sha256:[0-9a-f]+"), 2 * LIMIT),),
    )
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["POST", "PUT", "GET"]),
            Route("/blobs/{digest}", upload, methods=["POST"]),
            Route("/stream", stream),
        ],
        middleware=[Middleware(HTTPGuard, policy=policy, respond=respond)],
    )
    with TestClient(app, base_url="http://127.0.0.1:11500") as c:
        yield c


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_state_changing_bodies_must_be_json(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = client.post("/echo", content=b'{"a": 1}', headers=headers)
    assert reply.status_code == 415
    error = reply.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert "-H 'Content-Type: application/json'" in error["message"]


def test_json_types_and_bodiless_requests_pass(client: TestClient) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "application/vnd.api+json"):  # fmt: skip
        reply = client.put("/echo", content=b"{}", headers={"content-type": content_type})
        assert reply.status_code == 200 and reply.json() == {"bytes": 2}
    assert client.post("/echo").json() == {"bytes": 0}
    # A GET changes nothing: its body's type is not checked, its size is.
    assert client.request("GET", "/echo", content=b"x").json() == {"bytes": 1}


def test_body_limit_by_length_and_while_streaming(client: TestClient) -> None:
    json_headers = {"content-type": "application/json"}
    assert client.post("/echo", content=b"x" * LIMIT, headers=json_headers).status_code == 200
    too_big = client.post("/echo", content=b"x" * (LIMIT + 1), headers=json_headers)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * (LIMIT // 2)

    chunked = client.post("/echo", content=chunks(), headers=json_headers)
    assert chunked.status_code == 413
    assert "MLXCTL_MAX_BODY_BYTES" in chunked.json()["error"]["message"]


def test_raw_body_routes_take_bytes_up_to_their_own_cap(client: TestClient) -> None:
    octets = {"content-type": "application/octet-stream"}
    ok = client.post("/blobs/sha256:ab", content=b"x" * (LIMIT + 500), headers=octets)
    assert ok.status_code == 201 and ok.json() == {"stored": LIMIT + 500}
    assert client.post("/blobs/sha256:ab", content=b"x" * 3 * LIMIT).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(6):
            yield b"x" * (LIMIT // 2)

    streamed = client.post("/blobs/sha256:ab", content=chunks(), headers=octets)
    assert streamed.status_code == 413 and streamed.json()["path"] == "/blobs/sha256:ab"
    # Only the listed route is exempt from the JSON rule.
    assert client.post("/blobs/not-a-digest", content=b"x", headers=octets).status_code == 415


def test_streamed_answers_pass_through(client: TestClient) -> None:
    with client.stream("GET", "/stream") as reply:
        assert list(reply.iter_lines()) == ["data: 0", "", "data: 1", "", "data: 2", ""]
    listed = client.get("/stream", headers={"origin": "http://localhost:5173"})
    assert listed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "x-request-id" in listed.headers["access-control-expose-headers"]
