"""The page itself: its files from the package, the key handed over once, `/` for browsers.

    GET  /ui/           the dashboard (static/index.html)
    GET  /ui/{name}     its scripts and styles (static/), nothing else
    POST /ui/login      {"key"} → 200 + the HttpOnly, SameSite=Strict session cookie;
                        401 for a wrong key, 400 when the daemon has no key
    POST /ui/logout     clears the cookie

The files hold no data, so they and the login are served without the key (still
behind the Host/Origin/content-type checks of every route); everything the page shows
comes from keyed routes. The page may load only its own scripts (Content-Security-Policy).
"""

from __future__ import annotations

import hashlib
import hmac
from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlxctl.api.errors import APIError, error_response
from mlxctl.httpguard import json_object
from mlxctl.httpguard.session import cookie_header

PREFIX = "/ui"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("mlxctl.dashboard").joinpath("static")
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return files


FILES = _load()
OPEN_PATHS = frozenset(
    {PREFIX, f"{PREFIX}/", f"{PREFIX}/login", f"{PREFIX}/logout"}
    | {f"{PREFIX}/{name}" for name in FILES}
)


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/", index, methods=["GET"]),
        Route(f"{PREFIX}/login", login, methods=["POST"]),
        Route(f"{PREFIX}/logout", logout, methods=["POST"]),
        Route(f"{PREFIX}/{{name}}", asset, methods=["GET"]),
    ]


async def index(request: Request) -> Response:
    return _file(request, "index.html")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name in ("login", "logout"):  # routes of their own, POST only
        raise HTTPException(405, headers={"Allow": "POST"})
    if name not in FILES or name == "index.html":
        return error_response(APIError(404, f"No dashboard file '{name}'.", code="not_found"))
    return _file(request, name)


def _file(request: Request, name: str) -> Response:
    body, media = FILES[name]
    tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    headers = {**_HEADERS, "ETag": tag}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


async def login(request: Request) -> Response:
    key: str | None = request.app.state.settings.api_key
    try:
        body = json_object(await request.body())
        given = body.get("key")
        if set(body) - {"key"} or not isinstance(given, str):
            raise APIError(400, 'send {"key": "<MLXCTL_API_KEY>"}', param="key")
        if not key:
            raise APIError(
                400, "This daemon has no API key (MLXCTL_API_KEY): nothing to log in to.",
                code="no_api_key",
            )  # fmt: skip
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise APIError(401, "Wrong API key.", param="key", code="invalid_api_key")
    except Exception as e:
        return error_response(e)
    return JSONResponse({"ok": True}, headers={"Set-Cookie": cookie_header(key)})


async def logout(request: Request) -> Response:
    return JSONResponse({"ok": True}, headers={"Set-Cookie": cookie_header(None)})


class BrowserRedirect:
    """`GET /` from a browser (it asks for HTML) goes to the dashboard; API clients
    (Ollama's liveness check) still get the Ollama answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "GET":
            accept = dict(scope["headers"]).get(b"accept", b"")
            if b"text/html" in accept:
                await RedirectResponse(f"{PREFIX}/", status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)
