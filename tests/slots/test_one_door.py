"""One door: a model on a slot is served by its slot's worker through every daemon route,
and the slot's traffic (direct too) is in the daemon's /metrics and the slot's log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from tests.api.conftest import StartDaemon
from tests.slots.conftest import base_port

pytestmark = pytest.mark.slow
CHAT = "/v1/chat/completions"


def worker_processes(slug: str) -> list[psutil.Process]:
    """Every `mlxctl worker SLUG` process of this test's home (workers run with the home as
    their working directory; other homes on the machine are not ours to count)."""
    home = os.path.realpath(os.environ["MLXCTL_HOME"])
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        argv, cwd = proc.info["cmdline"] or [], proc.info["cwd"]
        ours = bool(cwd) and os.path.realpath(cwd) == home
        if ours and argv[1:4] == ["-m", "mlxctl.cli.main", "worker"] and argv[4:5] == [slug]:
            found.append(proc)
    return found


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def test_a_slot_model_is_one_worker_behind_every_name(
    start_daemon: StartDaemon, slot_env: dict[str, str], tmp_path: Path
) -> None:
    registry = open_registry()
    folder = make_model(tmp_path / "tiny", arch="qwen2", size="tiny")
    record = register_path(registry, folder, slug="tiny")
    registry.db.close()
    port = base_port(slot_env)  # alias "alpha"
    # The real worker, with options the estimate and the slot's argv both follow.
    env = {"MLXCTL_WORKER_COMMAND": "", "MLXCTL_WORKER_CONTEXT": "256"}
    daemon = start_daemon(env={**slot_env, **env, "MLXCTL_WORKER_MAX_BATCH": "2"})
    admin = daemon.client()
    loaded = admin.post("/api/admin/slots/load", json={"model": "tiny", "slot": "alpha"})
    assert loaded.status_code == 200, loaded.text
    slot_pid = loaded.json()["live"]["pid"]

    # Through the daemon by slug and by alias, and straight to the slot's port.
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "Hello"}]
    by_slug = client.chat.completions.with_raw_response.create(
        model="tiny", messages=messages, max_tokens=4, extra_headers={"X-Request-Id": "by-slug"}
    )
    by_alias = client.chat.completions.create(model="alpha", messages=messages, max_tokens=4)
    assert by_slug.parse().model == by_alias.model == "tiny"
    direct = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    direct.chat.completions.create(model="tiny", messages=messages, max_tokens=4)
    client.close()
    direct.close()

    # One worker process served all three: the slot's, which the scheduler shows pinned.
    assert [p.pid for p in worker_processes("tiny")] == [slot_pid]
    rows = admin.get("/api/admin/ps").json()["models"]
    assert [(r["model"], r["pid"], r["slot"], r["pinned"]) for r in rows] == [
        ("tiny", slot_pid, {"port": port, "alias": "alpha"}, True)
    ]
    assert rows[0]["requests_total"] == 2 and rows[0]["keep_alive"] is None
    assert record.size_bytes and record.kv_bytes_per_token
    assert rows[0]["estimated_bytes"] == record.size_bytes + record.kv_bytes_per_token * 256 * 2
    status = admin.get("/api/admin/status").json()
    assert status["pinned_bytes"] == status["used_bytes"] == rows[0]["estimated_bytes"]
    assert (status["slot_models"], status["on_demand_models"]) == (1, 0)

    # /metrics: the daemon counted its two requests; the slot's series all three.
    found = samples(daemon.url)
    route = {"route": CHAT, "model": "tiny"}
    assert sample(found, "mlxctl_requests_total", **route, status="200") == 2
    where = {"slot": str(port), "alias": "alpha", "model": "tiny"}
    assert sample(found, "mlxctl_slot_requests_total", **where, route=CHAT, status="200") == 3
    assert sample(found, "mlxctl_slot_time_to_first_token_seconds_count", **where) == 3
    assert sample(found, "mlxctl_slot_generated_tokens_total", **where) >= 3
    assert sample(found, "mlxctl_slot_up", **where) == 1
    assert sample(found, "mlxctl_slot_queue_depth", **where) == 0

    # The slot's log has one access line per request; the daemon's id came along.
    log = Path(os.environ["MLXCTL_HOME"]) / "logs" / f"slot-{port}.log"
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    requests = [x for x in lines if x.get("event") == "request"]
    assert len(requests) == 3 and requests[0]["id"] == "by-slug"
    assert by_slug.headers["x-request-id"] == "by-slug"
    assert all(x["status"] == 200 and x["model"] == "tiny" for x in requests)
    assert all(x["completion_tokens"] >= 1 and x["ttft_ms"] is not None for x in requests)
    audit = next(x for x in lines if x.get("event") == "worker.ready")
    assert audit["model"]["context_length"] == 256 and audit["batch"]["max_batch"] == 2
