"""`Turn.collect()`: the whole generation of a non-streaming reply, in the order it began."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import httpx
import pytest

from mlxctl.api.errors import APIError
from mlxctl.api.turn import Text, Timings, ToolCall, Turn
from mlxctl.router import Exchange, Upstream
from mlxctl.scheduler.lease import Lease
from mlxctl.supervision.base import Worker


def _sse(*chunks: dict[str, Any]) -> bytes:
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join([*lines, "data: [DONE]\n\n"]).encode()


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _turn(body: bytes, released: list[str]) -> Turn:
    lease = Lease("m", 1, cast(Worker, None), None, lambda lease: released.append(lease.slug))
    upstream = Upstream(lease, httpx.Response(200, content=body), 0.0)
    return Turn(upstream, Timings(time.perf_counter()), Exchange())


def test_collect_joins_text_of_one_kind_and_keeps_the_order_blocks_began() -> None:
    call = {"index": 0, "id": "call_1", "function": {"name": "add", "arguments": '{"a":'}}
    body = _sse(
        _delta(reasoning_content="hm"),
        _delta(reasoning_content=", yes"),
        _delta(content="Sure"),
        _delta(content="."),
        _delta(tool_calls=[call]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": " 1}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}},
    )
    released: list[str] = []
    turn = _turn(body, released)
    reply = asyncio.run(turn.collect())
    assert reply.parts == [
        Text(thinking="hm, yes"),
        Text(content="Sure."),
        ToolCall(0, "call_1", "add", '{"a": 1}'),
    ]
    assert (reply.content, reply.thinking) == ("Sure.", "hm, yes")
    assert reply.tool_calls == [ToolCall(0, "call_1", "add", '{"a": 1}')]
    assert (reply.finish.reason, reply.finish.prompt_tokens) == ("tool_calls", 7)
    assert (turn.exchange.prompt_tokens, turn.exchange.completion_tokens) == (7, 5)
    assert released == ["m"]  # collect() closed the turn: the lease is back


def test_collect_releases_the_lease_when_the_worker_fails() -> None:
    released: list[str] = []
    turn = _turn(_sse(_delta(content="a"), {"error": {"message": "boom"}}), released)
    with pytest.raises(APIError, match="boom"):
        asyncio.run(turn.collect())
    assert released == ["m"]
