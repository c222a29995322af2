"""`HTTPGuard`: the one ASGI middleware in front of every mlxctl HTTP server.

Pure ASGI (streamed responses pass straight through). In order, for each request:

    Host      not a loopback name, the bound address or MLXCTL_ALLOWED_HOSTS   → 403
    Origin    neither the server itself nor in MLXCTL_ORIGINS                  → 403
              (an allowed origin's preflight → 204 with CORS headers; its real
               requests get Access-Control-Allow-Origin and exposed headers)
    key       when one is set, on every path but the open ones (/health)       → 401
              (or the dashboard's session cookie, from its own page: session.py)
    type      POST/PUT/PATCH/DELETE with a body that is not JSON               → 415
    size      a body beyond max_body_bytes (Content-Length, or counted)        → 413

Refusals are answered by `respond(path, error)`, so each server speaks its own
dialect's envelope. A body is read and counted before the app runs (JSON bodies
are small and every route reads them whole anyway), then replayed to the app.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxctl.httpguard.keys import authorized
from mlxctl.httpguard.origins import EXPOSE_HEADERS, preflight_headers, same_origin
from mlxctl.httpguard.policy import GuardPolicy, LivePolicy, RawBodyRoute
from mlxctl.httpguard.session import session_authorized
from mlxctl.openai_error import APIError

__all__ = ["BodyTooLarge", "HTTPGuard", "Respond", "is_json"]

# Builds the refusal's response (an ASGI app) in the envelope `path` answers in.
Respond = Callable[[str, APIError], ASGIApp]

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(APIError):
    def __init__(self, limit: int, setting: str = "MLXCTL_MAX_BODY_BYTES") -> None:
        super().__init__(
            413,
            f"The request body is larger than {limit} bytes, the most this server reads "
            f"({setting}).",
            code="request_too_large",
        )


def is_json(content_type: str | None) -> bool:
    """`application/json` or any `…+json` type, parameters (charset) aside."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class HTTPGuard:
    def __init__(self, app: ASGIApp, *, policy: GuardPolicy | LivePolicy, respond: Respond) -> None:
        self.app = app
        self._policy = policy
        self.respond = respond

    @property
    def policy(self) -> GuardPolicy:
        """The policy in force (a daemon's follows its config reloads)."""
        policy = self._policy
        return policy.current if isinstance(policy, LivePolicy) else policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        refusal = self._caller_refusal(scope, headers)
        cross_origin = origin is not None and not same_origin(origin, headers.get("host"))
        if scope["type"] == "websocket":
            if refusal is not None:
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if refusal is None and origin and preflight:
            await _preflight(origin, headers, send)
            return
        if cross_origin and refusal is None:  # a listed origin: it may read every answer
            send = _with_cors(send, origin or "")
        if refusal is None:
            refusal = self._key_refusal(scope, headers)
        if refusal is None:
            raw_route = self.policy.raw_route(scope["method"], scope["path"])
            refusal, receive = await self._body(scope, headers, receive, raw_route)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except BodyTooLarge as e:  # a raw-body route read past its cap
            if started:
                raise
            await self._refuse(scope, receive, send, e)

    def _caller_refusal(self, scope: Scope, headers: dict[str, str]) -> APIError | None:
        host = headers.get("host")
        if not self.policy.hosts.allows(host):
            return APIError(
                403,
                f"Host '{host}' is not an address this server answers: mlxctl serves only "
                "requests addressed to this machine (a guard against DNS rebinding). If you "
                "reach it under that name, add it to MLXCTL_ALLOWED_HOSTS.",
                code="forbidden_host",
            )
        origin = headers.get("origin")
        if origin is None or same_origin(origin, host) or self.policy.origins.allows(origin):
            return None
        return APIError(
            403,
            f"Origin '{origin}' may not call this API: pages from other web sites are "
            "refused. To let a web app you trust call it, add its origin to MLXCTL_ORIGINS "
            f"(e.g. MLXCTL_ORIGINS={origin}).",
            code="forbidden_origin",
        )

    def _key_refusal(self, scope: Scope, headers: dict[str, str]) -> APIError | None:
        key = self.policy.api_key
        if not key or scope["path"] in self.policy.open_paths or authorized(headers, key):
            return None
        if session_authorized(scope["method"], headers, key):  # the dashboard's own page
            return None
        return APIError(
            401,
            "Missing or wrong API key: send `Authorization: Bearer <MLXCTL_API_KEY>` "
            "(or `x-api-key`).",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def _body(
        self,
        scope: Scope,
        headers: dict[str, str],
        receive: Receive,
        raw_route: RawBodyRoute | None,
    ) -> tuple[APIError | None, Receive]:
        length_header = headers.get("content-length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        has_body = bool(length) or "transfer-encoding" in headers
        if not has_body:
            return None, receive
        method = scope["method"]
        given = headers.get("content-type")
        if raw_route is None and method in _STATE_CHANGING and not is_json(given):
            got = f"got '{given}'" if given else "none was sent"
            return APIError(
                415,
                f"{method} {scope['path']} takes a JSON body: send the header "
                f"`Content-Type: application/json` ({got}); with curl: "
                "-H 'Content-Type: application/json'.",
                code="unsupported_media_type",
            ), receive
        limit = raw_route.max_bytes if raw_route is not None else self.policy.max_body_bytes
        setting = raw_route.setting if raw_route is not None else "MLXCTL_MAX_BODY_BYTES"
        if limit is not None and length is not None and length > limit:
            return BodyTooLarge(limit, setting), receive
        if raw_route is not None:
            return None, receive if limit is None else _counting(receive, limit, setting)
        return await _buffered(receive, limit or 0)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: APIError) -> None:
        scope.setdefault("state", {})["refusal"] = error.code
        await self.respond(scope["path"], error)(scope, receive, send)


async def _buffered(receive: Receive, limit: int) -> tuple[APIError | None, Receive]:
    """Read the whole body (at most `limit` bytes), then replay it to the app."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: let the app see that
            first: Message = message
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return BodyTooLarge(limit), receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return first

    return None, replay


def _counting(receive: Receive, limit: int, setting: str) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyTooLarge(limit, setting)
        return message

    return counted


async def _preflight(origin: str, headers: dict[str, str], send: Send) -> None:
    answer = preflight_headers(
        origin,
        headers.get("access-control-request-headers"),
        headers.get("access-control-request-private-network") == "true",
    )
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    """Let the allowed origin's page read the response (and its request id, Retry-After)."""

    async def cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", EXPOSE_HEADERS.encode("latin-1")),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return cors
