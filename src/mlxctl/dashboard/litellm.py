"""`GET /api/admin/gateway/litellm`: the config `mlxctl gateway litellm` prints, as a
download (one model per slot alias at its fixed port; `gateway/litellm.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlxctl.api.errors import error_response
from mlxctl.gateway.litellm import build_config, reachable_host, to_yaml
from mlxctl.settings import Settings
from mlxctl.slots.table import slot_table

PATH = "/api/admin/gateway/litellm"


def routes() -> list[Route]:
    return [Route(PATH, litellm_config, methods=["GET"])]


async def litellm_config(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        table = slot_table(settings)
    except Exception as e:
        return error_response(e)
    config = build_config(
        table, reachable_host(settings.slot_host), keyed=settings.api_key is not None
    )
    return Response(
        to_yaml(config),
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="litellm-config.yaml"'},
    )
