"""A peer that breaks off mid-answer: the stream so far, then the dialect's error event
naming the peer (the peer's response is the seam: an httpx stream that fails)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from mlxctl.api.openai.routes import OPENAI
from mlxctl.peers.choice import Target
from mlxctl.peers.forward import SERVED_BY, passed_back
from mlxctl.peers.view import PeerView
from mlxctl.router import Exchange


class Breaks(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": []}\n\n'
        raise httpx.RemoteProtocolError("peer closed the connection")


def test_a_peer_lost_mid_stream_ends_with_the_dialects_error_event() -> None:
    upstream = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Breaks())
    target = Target(PeerView("c", "http://c:1", None), "tiny")
    exchange = Exchange()
    response = passed_back(upstream, target, OPENAI, exchange)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(response({"type": "http"}, receive, send))
    assert (SERVED_BY.encode(), b"c") in sent[0]["headers"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.startswith(b'data: {"choices": []}\n\n')
    assert b"peer 'c' stopped mid-answer" in body and b'"peer_lost"' in body
    assert exchange.error == "peer_lost"
