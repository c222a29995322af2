"""The OpenAI Responses API, on the dialect-neutral turn (as Ollama and Anthropic are).

    POST   /v1/responses                      JSON, or SSE with the typed events
    GET    /v1/responses/{id}                 a stored response
    DELETE /v1/responses/{id}
    GET    /v1/responses/{id}/input_items     its input items (limit, order, after)

The request becomes a chat request (`responses_request.py`), the worker's pieces
become output items and events (`responses_output.py`), and a response made with
`store: true` (the default) is kept by the daemon (`responses_store.py`) so the
next request can continue it with `previous_response_id`. The whole conversation
is sent to the worker each turn, so its prompt cache serves the shared prefix.
Errors use OpenAI's envelope; after the first event, a `response.failed` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.dialect import Dialect, Incoming
from mlxctl.api.openai.responses_items import bad
from mlxctl.api.openai.responses_output import Output
from mlxctl.api.openai.responses_request import Plan, plan
from mlxctl.api.openai.responses_store import ResponseStore, Stored
from mlxctl.api.openai.routes import OPENAI
from mlxctl.api.turn import Finish, Reply, ToolArgs, ToolCall, ToolStart, Turn


def routes() -> list[Route]:
    return [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", response, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
    ]


def store_of(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store


@OPENAI.handler()
async def create(incoming: Incoming) -> Response:
    store = store_of(incoming.request)
    steps = plan(incoming.body, store)
    record = incoming.resolve()
    turn = await incoming.turn(record, "/v1/chat/completions", steps.chat, incoming.keep_alive())
    output = Output(steps, record.slug)
    if steps.stream:
        # A failure after the first event is Responses' own `response.failed` event.
        dialect = Dialect(OPENAI.name, OPENAI.error_response, _failed(output), OPENAI.media_type)
        return dialect.streamed(turn, _events(turn, output, store))

    def render(reply: Reply) -> dict[str, Any]:
        for part in reply.parts:  # the same items the stream would have built
            if isinstance(part, ToolCall):
                output.feed(ToolStart(part.index, part.id, part.name))
                output.feed(ToolArgs(part.index, part.arguments))
            else:
                output.feed(part)
        output.feed(reply.finish)
        _keep(store, steps, output)
        return output.response()

    return OPENAI.collected(turn, render)


async def response(request: Request) -> Response:
    """GET or DELETE: one route, so a wrong method's 405 names both in `Allow`."""
    return await (delete(request) if request.method == "DELETE" else retrieve(request))


async def retrieve(request: Request) -> Response:
    try:
        stored = store_of(request).get(request.path_params["response_id"])
    except Exception as e:
        return OPENAI.error_response(e)
    return JSONResponse(stored.response)


async def delete(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    try:
        store_of(request).delete(response_id)
    except Exception as e:
        return OPENAI.error_response(e)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


async def input_items(request: Request) -> Response:
    try:
        stored = store_of(request).get(request.path_params["response_id"])
        items = _page(stored.input_items, dict(request.query_params))
    except Exception as e:
        return OPENAI.error_response(e)
    return JSONResponse(items)


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """OpenAI's list page: newest first unless order=asc, `limit` (1-100, 20) after `after`."""
    raw = query.get("limit", "20")
    limit = int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= 100:
        raise bad("'limit' must be an integer from 1 to 100", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad("'order' must be 'asc' or 'desc'", "order")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


def _keep(store: ResponseStore, steps: Plan, output: Output) -> None:
    if steps.store and output.status in ("completed", "incomplete"):
        history = [*steps.history, *steps.input, *output.items]
        store.put(output.id, Stored(output.response(), steps.input, history))


async def _events(turn: Turn, output: Output, store: ResponseStore) -> AsyncGenerator[bytes, None]:
    for event in output.start():
        yield _sse(event)
    async for piece in turn.pieces():
        events = output.feed(piece)
        if isinstance(piece, Finish):  # kept before the client can ask for it
            _keep(store, output.plan, output)
        for event in events:
            yield _sse(event)


def _failed(output: Output) -> Callable[[BaseException], bytes]:
    """A stream that fails after its first event ends with `response.failed`."""
    return lambda exc: b"".join(_sse(event) for event in output.fail(exc))


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
