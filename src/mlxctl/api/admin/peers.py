"""`GET /api/admin/peers`: this daemon's name and its peers as last read (up or down,
registered and loaded models, free budget): what `mlxctl list --all` and `ps --all`
print beside this host's own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.admin.status import PREFIX
from mlxctl.peers import Peers


def routes() -> list[Route]:
    return [Route(f"{PREFIX}/peers", peers, methods=["GET"])]


async def peers(request: Request) -> Response:
    known: Peers = request.app.state.peers
    views = [view.as_dict() for view in known.monitor.views()]
    return JSONResponse({"host": known.me, "peers": views})
