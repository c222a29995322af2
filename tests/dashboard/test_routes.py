"""The dashboard's routes over HTTP against a real daemon: the page and its login, the
session cookie's rules, jobs that outlive their request, the event stream, the request log."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from mlxctl.httpguard.session import COOKIE
from tests.api.conftest import Daemon, StartDaemon
from tests.dashboard.conftest import REPO, hub_env
from tests.store.hub_server import FakeHub

KEY = "dashboard-key"


def _anonymous(daemon: Daemon) -> httpx.Client:
    client = httpx.Client(base_url=daemon.url, timeout=60)
    daemon.clients.append(client)
    return client


def test_the_page_is_open_its_data_needs_the_key_or_the_session_cookie(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon({"MLXCTL_API_KEY": KEY})
    anon = _anonymous(daemon)
    page = anon.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert anon.get("/ui/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
    script = anon.get("/ui/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert anon.get("/ui/secrets.txt").status_code == 401  # only the page's own files are open
    assert daemon.client().get("/ui/secrets.txt").status_code == 404
    assert anon.get("/ui/login").status_code == 405  # POST only, not a file
    assert anon.get("/api/admin/status").status_code == 401
    assert anon.get("/api/admin/events").status_code == 401

    refused = [
        (anon.post("/ui/login", json={"key": "wrong"}), 401),
        (anon.post("/ui/login", json={"password": KEY}), 400),
        (anon.post("/ui/login", content=KEY, headers={"content-type": "text/plain"}), 415),
        (anon.post("/ui/login", json={"key": KEY}, headers={"Origin": "http://evil.test"}), 403),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "set-cookie" not in answer.headers
    login = anon.post("/ui/login", json={"key": KEY})
    assert login.status_code == 200, login.text
    cookie = login.headers["set-cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert KEY not in cookie  # a digest of the key, never the key
    session = {"Cookie": cookie.split(";")[0]}
    own = {**session, "Origin": daemon.url}

    def status(method: str, path: str, headers: dict[str, str], **kw: Any) -> int:
        return anon.request(method, path, headers=headers, **kw).status_code

    assert status("GET", "/api/admin/status", session) == 200
    assert status("GET", "/api/admin/status", {**session, "Sec-Fetch-Site": "same-origin"}) == 200
    # Another site's page, or another port of this machine (same site, other origin).
    assert status("GET", "/api/admin/status", {**session, "Sec-Fetch-Site": "cross-site"}) == 401
    assert status("GET", "/api/admin/status", {**session, "Sec-Fetch-Site": "same-site"}) == 401
    assert status("GET", "/api/admin/status", {"Cookie": f"{COOKIE}=forged"}) == 401
    unload = {"json": {"model": "nothing-here"}}
    assert status("POST", "/api/admin/unload", session, **unload) == 401  # no Origin: not the page
    assert (
        status("POST", "/api/admin/unload", {**session, "Origin": "http://localhost:1"}, **unload)
        == 403
    )
    assert (
        status("POST", "/api/admin/unload", own, **unload) == 404
    )  # past the guard: no such model
    form = {
        "content": "model=x",
        "headers": {**own, "content-type": "application/x-www-form-urlencoded"},
    }
    assert anon.post("/api/admin/unload", **form).status_code == 415  # type: ignore[arg-type]

    logout = anon.post("/ui/logout", json={})
    assert "Max-Age=0" in logout.headers["set-cookie"]
    access = [line for line in daemon.logs() if line.get("event") == "request"]
    assert {"invalid_api_key", "forbidden_origin"} <= {line.get("error") for line in access}


def _wait_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {job["id"]: job for job in client.get("/api/admin/jobs").json()["jobs"]}
        if jobs[job_id]["state"] != "running":
            return jobs[job_id]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _events(client: httpx.Client, n: int, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with client.stream("GET", "/api/admin/events", params=params) as stream:
        assert stream.status_code == 200, stream.read()
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                assert event == "state"
                found.append(json.loads(line[6:]))
                if len(found) == n:
                    break
    return found


def test_a_pull_job_is_kept_by_the_daemon_and_streamed_with_the_state(
    start_daemon: StartDaemon, hub: FakeHub
) -> None:
    daemon = start_daemon(hub_env(hub))
    client = daemon.client()
    hub.bytes_per_second = 2 << 20  # long enough to be seen running
    started = client.post(
        "/api/admin/jobs", json={"operation": "store.pull", "args": {"reference": REPO}}
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["operation"] == "store.pull" and job["args"]["reference"] == REPO
    # The request that started it is over: the job goes on and the board has it.
    finished = _wait_job(client, job["id"])
    assert finished["state"] == "done", finished
    assert finished["items"] and all(i["finished"] for i in finished["items"])
    assert finished["done_bytes"] == finished["total_bytes"] > 0
    assert finished["result"]["model"] in {
        m["slug"] for m in client.get("/api/admin/models").json()["models"]
    }

    # Refused before any progress: the real status, and nothing kept.
    cases = [
        ({"operation": "store.pull", "args": {"reference": "mlx-test/missing"}}, 404),
        ({"operation": "store.pull", "args": {"reference": REPO, "colour": 1}}, 400),
        ({"operation": "models.rm", "args": {"model": "x"}}, 400),  # not a job operation
        ({"operation": "store.pull", "args": {"reference": REPO}, "also": 1}, 400),
        ({"operation": "store.verify"}, 400),  # args: {} at least
    ]
    for body, status in cases:
        answer = client.post("/api/admin/jobs", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert set(answer.json()["error"]) >= {"message", "type", "param", "code"}
    assert [j["id"] for j in client.get("/api/admin/jobs").json()["jobs"]] == [job["id"]]

    seen = client.get("/api/admin/ps", headers={"X-Request-Id": "dash-probe-1"})
    assert seen.status_code == 200
    first, second = _events(client, 2, interval="0.2")
    assert first["status"]["budget_bytes"] > 0 and "models" in first["status"]
    assert [j["id"] for j in first["jobs"]] == [job["id"]]
    assert len(first["slots"]) == 10  # the default slot table
    assert "dash-probe-1" in {r["id"] for r in first["requests"]}
    assert second["requests"] == [] or second["requests"][0]["seq"] > first["last"]
    later = _events(client, 1, after=str(first["last"]))[0]
    assert "dash-probe-1" not in {r["id"] for r in later["requests"]}

    tail = client.get("/api/admin/requests").json()
    line = next(r for r in tail["requests"] if r["id"] == "dash-probe-1")
    assert line["path"] == "/api/admin/ps" and line["status"] == 200 and line["ts"] > 0
    assert tail["last"] >= line["seq"]
    for bad in (
        "/api/admin/requests?after=x",
        "/api/admin/events?interval=0",
        "/api/admin/events?after=-1",
    ):
        answer = client.get(bad)
        assert answer.status_code == 400 and answer.json()["error"]["param"], (bad, answer.text)


def test_browsers_at_the_root_go_to_the_dashboard_and_slots_have_a_litellm_config(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon()
    client = daemon.client(follow_redirects=False)
    browser = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
    assert browser.status_code == 303 and browser.headers["location"] == "/ui/"
    ollama = client.get("/")  # Ollama's clients check the root: unchanged for them
    assert ollama.status_code == 200 and "running" in ollama.text
    config = client.get("/api/admin/gateway/litellm")
    assert config.status_code == 200 and config.headers["content-type"].startswith(
        "application/yaml"
    )
    assert "attachment" in config.headers["content-disposition"]
    assert '"model_name": "' in config.text or "model_name:" in config.text
