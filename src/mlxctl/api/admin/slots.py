"""The slots admin API: what the CLI, LiteLLM tooling and the MCP server code against.

    GET  /api/admin/slots                 {"slots": [slot, ...]}
    POST /api/admin/slots/load            {"model", "slot", "force"?} → slot; the model's
                                          exact name (or an unregistered org/repo to pull)
    POST /api/admin/slots/unload          {"slot"} → slot (+ "unloaded", "stopped_pid")
    POST /api/admin/slots/unload-all      {"confirm": true} → {"unloaded": [{"slot",
                                          "model", "stopped_pid"}], "slots"}
    POST /api/admin/slots/reconcile       → {"actions", "unfixable", "slots"}
    GET  /api/admin/slots/verify?strict=  → {"ok", "problems": [{"slot", "model", "problem"}]}

A slot is `{"port", "alias", "desired", "live": {"pid", "model", "started_at",
"healthy"} | null, "drift": [str, ...]}`. Errors use the OpenAI envelope. `unload` and
`unload-all` stop mlxctl's slot workers and any MLX server (mlx_lm.server,
mlx-openai-server, an mlxctl worker started by hand) on a slot port, never another
kind of process.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.errors import error_response
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.httpguard import json_object
from mlxctl.slots import SlotSupervisor

PREFIX = "/api/admin/slots"


def routes() -> list[Route]:
    return [
        Route(PREFIX, list_slots, methods=["GET"]),
        Route(f"{PREFIX}/load", load, methods=["POST"]),
        Route(f"{PREFIX}/unload", unload, methods=["POST"]),
        Route(f"{PREFIX}/unload-all", unload_all, methods=["POST"]),
        Route(f"{PREFIX}/reconcile", reconcile, methods=["POST"]),
        Route(f"{PREFIX}/verify", verify, methods=["GET"]),
    ]


async def list_slots(request: Request) -> Response:
    try:
        return JSONResponse({"slots": await _slots(request).snapshot()})
    except Exception as e:
        return error_response(e)


async def load(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        model = _exact_model(request, _text(body, "model"))
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise InvalidInput("'force' must be true or false")
        return JSONResponse(await _slots(request).load(model, _slot(body), force))
    except Exception as e:
        return error_response(e)


async def unload(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        return JSONResponse(await _slots(request).unload(_slot(body)))
    except Exception as e:
        return error_response(e)


async def unload_all(request: Request) -> Response:
    try:
        body = json_object(await request.body() or b"{}")
        if body.get("confirm") is not True:
            raise InvalidInput(
                'unload-all stops every slot: send {"confirm": true} to do it',
                hint="the CLI asks first, or pass --yes",
            )
        return JSONResponse(await _slots(request).unload_all())
    except Exception as e:
        return error_response(e)


async def reconcile(request: Request) -> Response:
    try:
        return JSONResponse(await _slots(request).reconcile())
    except Exception as e:
        return error_response(e)


async def verify(request: Request) -> Response:
    try:
        strict = request.query_params.get("strict", "0").lower()
        if strict not in ("0", "1", "true", "false"):
            raise InvalidInput(f"strict must be 0 or 1, not {strict!r}")
        return JSONResponse(await _slots(request).verify(strict in ("1", "true")))
    except Exception as e:
        return error_response(e)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{name}' is required: a model slug or repo id")
    return value


def _exact_model(request: Request, reference: str) -> str:
    """The slug of the model named exactly. A name matching nothing passes through (the
    supervisor pulls an `org/repo`, or says how to); a mere prefix of one is refused."""
    registry = _slots(request).registry
    try:
        return registry.resolve_exact(reference).slug
    except NotFound as not_exact:
        try:
            registry.resolve(reference)  # a prefix: the supervisor would take that model
        except NotFound:
            return reference
        raise not_exact from None


def _slot(body: dict[str, Any]) -> str | int:
    value = body.get("slot")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InvalidInput("'slot' is required: a slot port or alias")
    return value


def _slots(request: Request) -> SlotSupervisor:
    supervisor: SlotSupervisor = request.app.state.slots
    return supervisor
