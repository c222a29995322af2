"""mlxctl's own routes in the document: `api/admin/status.py`, `api/admin/slots.py`,
`api/admin/config.py`, `api/metrics.py` and `/openapi.json` itself. Errors use the OpenAI
envelope, as the handlers do.
"""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    ADMIN,
    BOOLEAN,
    INTEGER,
    MODEL,
    STRING,
    TEXT,
    Paths,
    Schema,
    answer,
    array,
    obj,
    ok_json,
    operation,
    ref,
)
from mlxctl.api.openapi.openai import KEEP_ALIVE
from mlxctl.settings import Settings
from mlxctl.slots.table import slot_table

_INT_OR_NULL: Schema = {"type": ["integer", "null"]}
_NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
_STRING_OR_NULL: Schema = {"type": ["string", "null"]}
_SLOT_REF = ref("SlotRef")


def slot_ref(settings: Settings) -> Schema:
    """A slot as the handlers accept it: one of this daemon's ports or aliases."""
    table = slot_table(settings)
    return {
        "description": "A slot's port or alias.",
        "anyOf": [
            {"enum": [spec.port for spec in table]},
            {"enum": [str(spec.port) for spec in table] + [spec.alias for spec in table]},
        ],
    }


_ANY_OBJECT: Schema = {"type": "object"}
_NAME: Schema = {"type": "string", "minLength": 1}
_NAMES: Schema = {"type": "array", "items": STRING}
_CONFIG = obj(
    {
        "path": STRING,
        "file": BOOLEAN,
        "settings": {
            "type": "object",
            "additionalProperties": obj(
                {"value": {}, "source": {"enum": ["default", "file", "env"]}}, "value", "source"
            ),
        },
        "models": _ANY_OBJECT,
        "sections": _ANY_OBJECT,
        "aliases": {"type": "object", "additionalProperties": _NAMES},
        "presets": _ANY_OBJECT,
        "problems": _NAMES,
        "pid": INTEGER,
    },
    "path",
    "settings",
    "aliases",
)
_RELOAD = obj(
    {
        "reloaded": BOOLEAN,
        "path": STRING,
        "settings": _NAMES,
        "restart_required": _NAMES,
        "restarted": _NAMES,
        "aliases": _NAMES,
    },
    "reloaded",
)

SCHEMAS: dict[str, Schema] = {
    "SlotRef": {"description": "Filled in from the daemon's slot table (slot_ref)."},
    "Health": obj(
        {
            "status": {"enum": ["ok", "draining"]},
            "version": STRING,
            "pid": INTEGER,
            "uptime_s": {"type": "number"},
            "home": {
                "type": "string",
                "description": "A hash of the daemon's MLXCTL_HOME: the CLI talks to a "
                "daemon on the default address only when it serves the CLI's own home.",
            },
        },
        "status",
        "version",
        "pid",
        "uptime_s",
    ),
    "LoadedModel": obj(
        {
            "model": STRING,
            "state": {"enum": ["loading", "ready", "unloading", "queued", "failed"]},
            "estimated_bytes": INTEGER,
            "in_flight": INTEGER,
            "waiting": INTEGER,
            "pid": _INT_OR_NULL,
            "url": _STRING_OR_NULL,
            "keep_alive": _NUMBER_OR_NULL,
            "keep_alive_text": STRING,
            "expires_in": _NUMBER_OR_NULL,
            "loaded_for": _NUMBER_OR_NULL,
            "idle_for": _NUMBER_OR_NULL,
            "requests_total": INTEGER,
            "reason": _STRING_OR_NULL,
            "pinned": BOOLEAN,
            "slot": {
                "anyOf": [
                    obj({"port": INTEGER, "alias": STRING}, "port", "alias"),
                    {"type": "null"},
                ]
            },
            "measured": obj(
                {
                    name: _INT_OR_NULL
                    for name in (
                        "rss_bytes",
                        "mlx_active_bytes",
                        "mlx_peak_bytes",
                        "mlx_cache_bytes",
                        "total_bytes",
                    )
                }
            ),
            "log": _STRING_OR_NULL,
            "preset": _STRING_OR_NULL,
            "options": {
                "description": "The model's options (config.yaml, docs/config.md); null for a "
                "model no longer registered.",
                "type": ["object", "null"],
            },
        },
        "model",
        "state",
        "estimated_bytes",
        "measured",
    ),
    "AdminStatus": obj(
        {
            "version": STRING,
            "pid": INTEGER,
            "uptime_s": {"type": "number"},
            "daemon_rss_bytes": _INT_OR_NULL,
            "budget_bytes": INTEGER,
            "budget": STRING,
            "used_bytes": INTEGER,
            "pinned_bytes": INTEGER,
            "free_bytes": INTEGER,
            "max_loaded_models": INTEGER,
            "loaded_models": INTEGER,
            "on_demand_models": INTEGER,
            "slot_models": INTEGER,
            "closing": BOOLEAN,
            "measured_bytes": INTEGER,
            "models": array(ref("LoadedModel")),
        },
        "version",
        "budget_bytes",
        "used_bytes",
        "free_bytes",
        "models",
    ),
    "AdminModelRequest": obj(
        {
            "model": TEXT,
            "keep_alive": {"anyOf": [KEEP_ALIVE, {"type": "null"}]},
            "preset": {
                "description": "load only: a config.yaml preset to run the model with",
                "anyOf": [TEXT, {"type": "null"}],
            },
            "shard": {
                "description": "load only: run the model across hosts, as a config.yaml "
                "`shard:` section (docs/config.md; placement rules in docs/scale-out.md); it "
                "holds until unload",
                "anyOf": [ref("Shard"), {"type": "null"}],
            },
        },
        "model",
        extra=True,
    ),
    "Shard": obj(
        {
            "hosts": array({"anyOf": [_NAME, ref("ShardHost")]}, minItems=1),
            "backend": {"enum": ["ring", "jaccl", "jaccl-ring"]},
            "mode": {"enum": ["tensor", "pipeline"]},
            "python": {"anyOf": [_NAME, {"type": "null"}]},
        },
        "hosts",
    ),
    "ShardHost": obj(
        {
            "host": _NAME,
            "ip": _STRING_OR_NULL,
            "ranks": {"type": "integer", "minimum": 1, "maximum": 64},
            "memory": {"type": ["string", "integer", "null"]},
            "rdma": {"anyOf": [array(_STRING_OR_NULL), {"type": "null"}]},
        },
        "host",
    ),
    "Slot": obj(
        {
            "port": INTEGER,
            "alias": STRING,
            "desired": _STRING_OR_NULL,
            "live": {
                "anyOf": [
                    obj(
                        {
                            "pid": _INT_OR_NULL,
                            "model": _STRING_OR_NULL,
                            "started_at": _STRING_OR_NULL,
                            "healthy": BOOLEAN,
                        }
                    ),
                    {"type": "null"},
                ]
            },
            "drift": array(STRING),
            "unloaded": _STRING_OR_NULL,
            "stopped_pid": _INT_OR_NULL,
            "stopped": {"type": "object"},
        },
        "port",
        "alias",
        "desired",
        "live",
        "drift",
    ),
    "Peer": obj(
        {
            "name": STRING,
            "url": STRING,
            "up": BOOLEAN,
            "error": _STRING_OR_NULL,
            "seen_ago": _NUMBER_OR_NULL,
            "free_bytes": _INT_OR_NULL,
            "budget_bytes": _INT_OR_NULL,
            "models": array(_ANY_OBJECT),
            "loaded": array(_ANY_OBJECT),
        },
        "name",
        "url",
        "up",
        "models",
        "loaded",
    ),
    "SlotProblem": obj(
        {"slot": INTEGER, "model": _STRING_OR_NULL, "problem": STRING}, "slot", "problem"
    ),
}

_SLOTS = obj({"slots": array(ref("Slot"))}, "slots")

PATHS: Paths = {
    "/health": {
        "get": operation(
            ADMIN,
            "Liveness and version (no API key needed)",
            {
                200: ok_json("Up", ref("Health")),
                503: ok_json("Draining: shutting down", ref("Health")),
            },
            secured=False,
        )
    },
    "/openapi.json": {
        "get": operation(
            ADMIN,
            "This document",
            {200: ok_json("The OpenAPI 3.1 document", {"type": "object"})},
        )
    },
    "/metrics": {
        "get": operation(
            ADMIN,
            "Prometheus metrics",
            {200: answer("Prometheus text format", {"text/plain": STRING})},
        )
    },
    "/api/admin/ps": {
        "get": operation(
            ADMIN,
            "Loaded models with measured memory",
            {200: ok_json("", obj({"models": array(ref("LoadedModel"))}, "models"))},
        )
    },
    "/api/admin/status": {
        "get": operation(
            ADMIN, "Budget, use and loaded models", {200: ok_json("", ref("AdminStatus"))}
        )
    },
    "/api/admin/load": {
        "post": operation(
            ADMIN,
            "Load a model now and wait until it is ready",
            {200: ok_json("The loaded model", ref("LoadedModel"))},
            errors=(*MODEL, 429, 502),
            request=ref("AdminModelRequest"),
        )
    },
    "/api/admin/unload": {
        "post": operation(
            ADMIN,
            "Unload a model (after its requests in flight)",
            {
                200: ok_json(
                    "What was unloaded",
                    obj({"model": STRING, "unloaded": BOOLEAN}, "model", "unloaded"),
                )
            },
            errors=MODEL,
            request=ref("AdminModelRequest"),
        )
    },
    "/api/admin/slots": {
        "get": operation(ADMIN, "The slots, desired and live", {200: ok_json("", _SLOTS)})
    },
    "/api/admin/peers": {
        "get": operation(
            ADMIN,
            "This daemon's host name and its peers as last read (docs/scale-out.md)",
            {200: ok_json("", obj({"host": STRING, "peers": array(ref("Peer"))}, "host", "peers"))},
        )
    },
    "/api/admin/config": {
        "get": operation(
            ADMIN,
            "The effective config: settings and their sources, aliases, presets, options",
            {200: ok_json("", _CONFIG)},
        )
    },
    "/api/admin/config/reload": {
        "post": operation(
            ADMIN,
            "Validate config.yaml and apply it without a restart",
            {200: ok_json("What the reload changed", _RELOAD)},
            errors=(400,),
        )
    },
    "/api/admin/metrics": {
        "get": operation(
            ADMIN,
            "The figures of /metrics as JSON, daemon-wide and per model",
            {200: ok_json("", obj({"daemon": _ANY_OBJECT, "models": _ANY_OBJECT}))},
        )
    },
    "/api/admin/slots/load": {
        "post": operation(
            ADMIN,
            "Put a model on a slot and start its worker",
            {200: ok_json("The slot", ref("Slot"))},
            errors=(*MODEL, 409),
            request=obj(
                {"model": TEXT, "slot": _SLOT_REF, "force": BOOLEAN}, "model", "slot", extra=True
            ),
        )
    },
    "/api/admin/slots/unload": {
        "post": operation(
            ADMIN,
            "Stop a slot's worker and clear it",
            {200: ok_json("The slot", ref("Slot"))},
            errors=(400,),
            request=obj({"slot": _SLOT_REF}, "slot", extra=True),
        )
    },
    "/api/admin/slots/unload-all": {
        "post": operation(
            ADMIN,
            "Stop every slot",
            {
                200: ok_json(
                    "What was unloaded",
                    obj(
                        {
                            "unloaded": array(
                                obj({"slot": INTEGER, "model": _STRING_OR_NULL}, "slot")
                            ),
                            "slots": array(ref("Slot")),
                        },
                        "unloaded",
                        "slots",
                    ),
                )
            },
            errors=(400,),
            request=obj({"confirm": {"const": True}}, "confirm", extra=True),
        )
    },
    "/api/admin/slots/reconcile": {
        "post": operation(
            ADMIN,
            "Make the live slots match the desired ones now",
            {
                200: ok_json(
                    "What was done",
                    obj(
                        {
                            "actions": array({"type": "object"}),
                            "unfixable": array(ref("SlotProblem")),
                            "slots": array(ref("Slot")),
                        },
                        "actions",
                        "unfixable",
                        "slots",
                    ),
                )
            },
        )
    },
    "/api/admin/slots/verify": {
        "get": operation(
            ADMIN,
            "Check the running slots against their registered settings",
            {
                200: ok_json(
                    "The problems found",
                    obj({"ok": BOOLEAN, "problems": array(ref("SlotProblem"))}, "ok", "problems"),
                )
            },
            errors=(400,),
            parameters=[
                {
                    "name": "strict",
                    "in": "query",
                    "required": False,
                    "description": "Also report warnings (not running, no audit line).",
                    "schema": {"enum": ["0", "1", "true", "false"]},
                }
            ],
        )
    },
}
