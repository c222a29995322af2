"""One request passed to a peer daemon: the caller's own HTTP request (same path, same
body with `model` set to the peer's name for it, the peer's key) and the peer's answer
passed back untouched, streamed byte for byte (`router.ProxyResponse`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from starlette.requests import Request

from mlxctl.errors import MlxctlError, Unavailable
from mlxctl.peers.choice import Target
from mlxctl.peers.monitor import peer_headers
from mlxctl.router import Dialect, Exchange, IdleLimit, ProxyResponse, Timeouts

SERVED_BY = "x-mlxctl-host"  # which host answered (on every forwarded answer)
# Request headers that belong to this hop or to the caller's credentials here.
_DROPPED = frozenset(
    {
        *("host", "content-length", "connection", "keep-alive", "transfer-encoding", "te"),
        *("upgrade", "accept-encoding", "authorization", "x-api-key", "cookie", "origin"),
        *("referer", "proxy-authorization", "x-request-id"),
    }
)


class PeerLost(Unavailable):
    """A peer stopped answering in the middle of a request."""

    status, code = 502, "peer_lost"


async def open_upstream(
    http: httpx.AsyncClient,
    target: Target,
    request: Request,
    body: dict[str, Any],
    me: str,
    timeouts: Timeouts,
    request_id: str | None,
) -> httpx.Response:
    """Send the request to `target`; its response is open (streaming) when this returns.
    Raises httpx's TransportError when the peer cannot be reached."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    headers.update(peer_headers(target.peer.key, me))
    if request_id:
        headers["x-request-id"] = request_id
    content = json.dumps({**body, "model": target.slug}, ensure_ascii=False).encode()
    url = target.peer.url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    sent = http.build_request(request.method, url, content=content, headers=headers)
    try:
        async with asyncio.timeout(timeouts.first_byte):
            response = await http.send(sent, stream=True)
    except TimeoutError:
        raise PeerLost(
            f"peer '{target.peer.name}' did not start answering within "
            f"{timeouts.first_byte:g} s (MLXCTL_WORKER_FIRST_BYTE_TIMEOUT)"
        ) from None
    assert isinstance(response.stream, httpx.AsyncByteStream)
    where = f"{target.slug}@{target.peer.name}"
    response.stream = IdleLimit(response.stream, timeouts.idle, where)
    return response


def passed_back(
    upstream: httpx.Response, target: Target, dialect: Dialect, exchange: Exchange
) -> ProxyResponse:
    """The peer's answer, streamed to the caller as it comes; a break mid-body ends an
    SSE stream with the dialect's error event."""
    name = target.peer.name

    async def broke(error: httpx.HTTPError) -> MlxctlError:
        return PeerLost(f"peer '{name}' stopped mid-answer ({type(error).__name__})")

    response = ProxyResponse(upstream, dialect, exchange, release=_nothing, lost=broke)
    response.raw_headers.append((SERVED_BY.encode(), name.encode()))
    return response


def _nothing() -> None:
    pass
