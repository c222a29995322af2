"""Long operations the daemon runs for the dashboard and keeps, so a reload loses nothing.

    GET  /api/admin/jobs   {"jobs": [job, ...]}  newest first
    POST /api/admin/jobs   {"operation": "store.pull", "args": {...}} → 202 job

A job is one of the streaming operations (`mlxctl.operations`: pull, push, create,
verify) run through the same door as its own admin route (`api/admin_ops.events`);
the board folds its progress events into per-item counts. Arguments are checked, and
a failure before the first progress event is answered with its real status, as the
operation's own route does; later failures end the job with the error in the envelope.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlxctl.api.admin.operations import events, parse_args
from mlxctl.api.errors import APIError, admin_error_body, admin_error_response
from mlxctl.httpguard import json_object
from mlxctl.operations import OPERATIONS, Args, Operation

PATH = "/api/admin/jobs"
# Operations that report progress: the ones worth watching from a page.
JOB_OPERATIONS: dict[str, Operation[Any]] = {op.name: op for op in OPERATIONS if op.streams}
KEEP = 50  # finished jobs kept for the page; running ones are never dropped


@dataclass
class Job:
    id: str
    operation: str
    args: dict[str, Any]
    state: Literal["running", "done", "failed"] = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def fold(self, event: dict[str, Any]) -> None:
        """One progress event (store.progress.EventSink) into the item counts."""
        key = str(event.get("key", ""))
        kind = event.get("progress")
        item = self.items.setdefault(
            key, {"key": key, "label": key, "total": None, "done": 0, "finished": False}
        )
        if kind == "start":
            item.update(label=event.get("label") or key, total=event.get("total"))
            item["done"] = event.get("done") or 0
        elif kind == "advance":
            item["done"] = event.get("done") or 0
            if event.get("total") is not None:
                item["total"] = event["total"]
        elif kind == "finish":
            item.update(finished=True, note=event.get("note") or "")
            if item["total"] is not None:
                item["done"] = item["total"]

    def to_dict(self) -> dict[str, Any]:
        total = sum(i["total"] or 0 for i in self.items.values())
        done = sum(min(i["done"], i["total"] or i["done"]) for i in self.items.values())
        return {
            "id": self.id,
            "operation": self.operation,
            "args": self.args,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "total_bytes": total,
            "done_bytes": done,
            "items": list(self.items.values()),
            "result": self.result,
            "error": self.error,
        }


class JobBoard:
    """The daemon's jobs; runs on the event loop, each job in a task of its own."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: set[asyncio.Task[None]] = set()

    def list(self) -> list[dict[str, Any]]:
        return [job.to_dict() for job in reversed(self.jobs.values())]

    async def start(self, app: Starlette, op: Operation[Any], args: Args) -> Job:
        """Start `op`; returns once it reported progress or ended. Raises what it raised
        before its first event (nothing is kept then)."""
        job = Job(uuid.uuid4().hex[:12], op.name, args.model_dump(mode="json"))
        begun = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(job, op, app, args, begun))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        await begun  # raises the early failure
        self.jobs[job.id] = job
        self._trim()
        return job

    async def _run(
        self, job: Job, op: Operation[Any], app: Starlette, args: Args, begun: asyncio.Future[None]
    ) -> None:
        try:
            async for event in events(op, app, args):
                if "result" in event:
                    job.result = event["result"]
                else:
                    job.fold(event)
                if not begun.done():
                    begun.set_result(None)
            job.state = "done"
        except Exception as e:
            if not begun.done():
                begun.set_exception(e)
                return
            error, body = admin_error_body(e)
            job.state, job.error = "failed", {**body["error"], "status": error.status}
        finally:
            job.finished_at = time.time()
            if not begun.done():
                begun.set_result(None)

    def _trim(self) -> None:
        finished = [j.id for j in self.jobs.values() if j.state != "running"]
        for job_id in finished[: max(0, len(self.jobs) - self.keep)]:
            del self.jobs[job_id]

    async def close(self) -> None:
        """Stop watching (a job's thread finishes its file on its own)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def routes() -> list[Route]:
    # One route for both methods, so a 405 names them both in `Allow`.
    return [Route(PATH, jobs_endpoint, methods=["GET", "POST"])]


async def jobs_endpoint(request: Request) -> Response:
    if request.method == "POST":
        return await start_job(request)
    return JSONResponse({"jobs": board(request.app).list()})


async def start_job(request: Request) -> Response:
    try:
        body = json_object(await request.body())
        unknown = set(body) - {"operation", "args"}
        if unknown:
            raise APIError(400, f"{PATH} does not take the field '{min(unknown)}'", param="body")
        name = body.get("operation")
        op = JOB_OPERATIONS.get(name) if isinstance(name, str) else None
        if op is None:
            raise APIError(
                400,
                f"'operation' must be one of {', '.join(sorted(JOB_OPERATIONS))}",
                param="operation",
                code="invalid_value",
            )
        if "args" not in body:
            raise APIError(400, "'args' is required", param="args", code="invalid_value")
        args = parse_args(op, json.dumps(body["args"]).encode())
        job = await board(request.app).start(request.app, op, args)
    except Exception as e:
        return admin_error_response(e)
    return JSONResponse(job.to_dict(), status_code=202)


def board(app: Starlette) -> JobBoard:
    jobs: JobBoard = app.state.dashboard.jobs
    return jobs
