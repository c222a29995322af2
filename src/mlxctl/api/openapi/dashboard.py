"""The dashboard's routes in the document (`mlxctl.dashboard`): its page and login, served
without the key, and the admin routes it adds (events, jobs, requests, LiteLLM config)."""

from __future__ import annotations

from typing import Any

from mlxctl.api.openapi.build import (
    ADMIN,
    ADMIN_OPS,
    ANY,
    BODY,
    INTEGER,
    NUMBER,
    STRING,
    Paths,
    Schema,
    answer,
    array,
    obj,
    ok_json,
    operation,
    ref,
)
from mlxctl.dashboard.jobs import JOB_OPERATIONS
from mlxctl.dashboard.pages import FILES

# The page's own paths: answered without the key (they hold no data).
OPEN = frozenset({"/ui/", "/ui/{name}", "/ui/login", "/ui/logout"})
# Routes that answer in the admin operations' envelope (with `hint`).
ADMIN_ERRORS = frozenset({"/api/admin/jobs"})

_NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}


def _job_request() -> Schema:
    """One shape per operation a job may run: its name and that operation's arguments."""
    return {
        "anyOf": [
            obj(
                {"operation": {"const": name}, "args": op.args.model_json_schema()},
                "operation",
                "args",
            )
            for name, op in sorted(JOB_OPERATIONS.items())
        ]
    }


SCHEMAS: dict[str, Schema] = {
    "Job": obj(
        {
            "id": STRING,
            "operation": {"enum": sorted(JOB_OPERATIONS)},
            "args": {"type": "object"},
            "state": {"enum": ["running", "done", "failed"]},
            "started_at": NUMBER,
            "finished_at": _NUMBER_OR_NULL,
            "total_bytes": INTEGER,
            "done_bytes": INTEGER,
            "items": array({"type": "object"}),
            "result": {"type": ["object", "null"]},
            "error": {"type": ["object", "null"]},
        },
        "id",
        "operation",
        "state",
        "items",
    ),
    "RequestLine": {
        "type": "object",
        "description": "One access-log line (`seq` numbers them): id, method, path, model, "
        "status, tokens, ttft, seconds, error.",
        "properties": {"seq": INTEGER},
        "required": ["seq"],
    },
}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PATHS: Paths = {
    "/ui/": {
        "get": operation(
            ADMIN,
            "The dashboard page",
            {200: answer("HTML", {"text/html": STRING}), 304: answer("Not modified")},
            secured=False,
        )
    },
    "/ui/{name}": {
        "get": operation(
            ADMIN,
            "The dashboard's scripts and styles",
            {
                200: answer("The file", {"text/javascript": STRING, "text/css": STRING}),
                304: answer("Not modified"),
            },
            errors=(404,),
            parameters=[
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": sorted(n for n in FILES if n != "index.html")},
                }
            ],
            secured=False,
        )
    },
    "/ui/login": {
        "post": operation(
            ADMIN,
            "Trade the API key for the dashboard's HttpOnly, SameSite=Strict session cookie",
            {200: ok_json("Logged in: Set-Cookie", obj({"ok": {"const": True}}, "ok"))},
            errors=(*BODY, 401),
            request=obj({"key": STRING}, "key"),
            secured=False,
        )
    },
    "/ui/logout": {
        "post": operation(
            ADMIN,
            "Clear the session cookie",
            {200: ok_json("Logged out", obj({"ok": {"const": True}}, "ok"))},
            secured=False,
        )
    },
    "/api/admin/events": {
        "get": operation(
            ADMIN,
            "The daemon's state as server-sent events, one `state` event per interval",
            {
                200: answer(
                    "`event: state`, data: {status, slots, jobs, requests, last}",
                    {"text/event-stream": ANY},
                )
            },
            errors=(400,),
            parameters=[
                _query(
                    "interval",
                    {"type": "number", "minimum": 0.2, "maximum": 60},
                    "Seconds between events (default 1).",
                ),
                _query(
                    "after",
                    {"type": "integer", "minimum": 0},
                    "Send request lines after this one (`last` of an earlier event).",
                ),
            ],
        )
    },
    "/api/admin/jobs": {
        "get": operation(
            ADMIN_OPS,
            "Running and recent jobs (pulls and other streaming operations), newest first",
            {200: ok_json("", obj({"jobs": array(ref("Job"))}, "jobs"))},
        ),
        "post": operation(
            ADMIN_OPS,
            "Start a pull, push, create or verify that the daemon keeps as a job",
            {202: ok_json("The job, once it reported progress", ref("Job"))},
            errors=(*BODY, 403, 404, 409, 503),
            request=_job_request(),
        ),
    },
    "/api/admin/requests": {
        "get": operation(
            ADMIN,
            "The last requests the daemon answered (kept in memory)",
            {
                200: ok_json(
                    "",
                    obj(
                        {"requests": array(ref("RequestLine")), "last": INTEGER}, "requests", "last"
                    ),
                )
            },
            errors=(400,),
            parameters=[
                _query("after", {"type": "integer", "minimum": 0}, "Only lines after this one.")
            ],
        )
    },
    "/api/admin/gateway/litellm": {
        "get": operation(
            ADMIN,
            "A LiteLLM proxy config for the slots (as `mlxctl gateway litellm` writes)",
            {
                200: answer(
                    "YAML (a download)",
                    {"application/yaml": obj({"model_list": array(ANY)}, "model_list")},
                )
            },
            errors=(400,),
        )
    },
}
