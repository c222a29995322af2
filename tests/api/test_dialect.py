"""The handler skeleton: the body read, extra fields refused, failures in the dialect's envelope."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mlxctl.api.anthropic.errors import ANTHROPIC
from mlxctl.api.dialect import Incoming
from mlxctl.api.ollama.errors import OLLAMA
from mlxctl.errors import NotFound


@OLLAMA.handler(fields={"model", "n"})
async def ollama_echo(incoming: Incoming) -> Response:
    if incoming.body.get("model") == "missing":
        raise NotFound("model 'missing' is not registered")
    return JSONResponse({"n": incoming.body.get("n"), "raw": incoming.raw.decode()})


@ANTHROPIC.handler(fields={"model"})
async def anthropic_echo(incoming: Incoming) -> Response:
    return JSONResponse({})


def client() -> TestClient:
    routes = [
        Route("/api/echo", ollama_echo, methods=["POST"]),
        Route("/v1/messages", anthropic_echo, methods=["POST"]),
    ]
    return TestClient(Starlette(routes=routes))


def test_the_handler_gets_the_body_as_read_and_as_sent() -> None:
    answer = client().post("/api/echo", content=b'{"n": 2}')
    assert answer.json() == {"n": 2, "raw": '{"n": 2}'}
    assert client().post("/api/echo").json() == {"n": None, "raw": ""}  # empty is {}


def test_failures_come_in_the_dialect_envelope() -> None:
    extra = client().post("/api/echo", json={"n": 1, "zz": 1, "aa": 2})
    assert extra.status_code == 400
    assert extra.json() == {"error": "/api/echo does not support the field(s) aa, zz"}
    missing = client().post("/api/echo", json={"model": "missing"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'missing' is not registered"}
    not_json = client().post("/api/echo", content=b"[1]")
    assert not_json.status_code == 400 and set(not_json.json()) == {"error"}
    refused = client().post("/v1/messages", json={"model": "m", "max_tokens": 1})
    assert refused.status_code == 400
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"
