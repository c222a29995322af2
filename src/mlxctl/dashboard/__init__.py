"""The web dashboard at `/ui/`: a page over the daemon's own admin API (docs/dashboard.md).

The page (`static/`: plain HTML, CSS and JavaScript, no build step, no CDN) calls the
same routes as the CLI (`/api/admin/...`, `/v1/chat/completions`); this package adds
only what a page needs beyond them:

    pages.py       /ui/ and its files, /ui/login + /ui/logout (the session cookie),
                   `BrowserRedirect`: `GET /` from a browser goes to /ui/
    events.py      GET /api/admin/events: status, slots, jobs and new requests as SSE
    jobs.py        /api/admin/jobs: pulls (and the other streaming operations) kept by
                   the daemon, so their progress survives a page reload
    requestlog.py  GET /api/admin/requests: the last access-log lines, kept in memory
    litellm.py     GET /api/admin/gateway/litellm: the slots' LiteLLM config as YAML

`Dashboard` holds the jobs and the request log for one daemon (`app.state.dashboard`).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from mlxctl.dashboard import events, jobs, litellm, pages, requestlog
from mlxctl.dashboard.jobs import JobBoard
from mlxctl.dashboard.pages import OPEN_PATHS, BrowserRedirect
from mlxctl.dashboard.requestlog import RequestLog

__all__ = ["OPEN_PATHS", "BrowserRedirect", "Dashboard", "routes"]


class Dashboard:
    """What the daemon keeps for its pages; `start` on the daemon's loop, `close` at exit."""

    def __init__(self) -> None:
        self.jobs = JobBoard()
        self.requests = RequestLog()
        self.slots: list[dict[str, Any]] | None = None  # the last slot snapshot (events.py)
        self.slots_at = 0.0

    @classmethod
    def start(cls) -> Dashboard:
        dashboard = cls()
        dashboard.requests.attach()
        return dashboard

    async def close(self) -> None:
        self.requests.detach()
        await self.jobs.close()


def routes() -> list[Route]:
    return [
        *pages.routes(),
        *events.routes(),
        *jobs.routes(),
        *requestlog.routes(),
        *litellm.routes(),
    ]
