"""Slots inside the memory budget, through a real daemon with fake workers on the slots:
a slot that does not fit is refused like an on-demand load, an on-demand load never
pushes memory past what the slots leave, a new daemon counts adopted slots again, and
the daemon's dialects take slot aliases as model names."""

from __future__ import annotations

import signal
from pathlib import Path

import anthropic
import httpx
import ollama

from tests.slots.conftest import Serve, add_model, base_port, slots, wait_for

MB = 1_000_000
BUDGET = {"MLXCTL_MEMORY_BUDGET": "100MB"}


def error(response: httpx.Response) -> str:
    assert response.headers.get("retry-after"), response.headers
    return str(response.json()["error"]["message"])


def test_slots_count_in_the_budget(serve: Serve, slot_env: dict[str, str], tmp_path: Path) -> None:
    base = base_port(slot_env)
    for slug, mb in (("huge", 150), ("slotted", 60), ("big", 50), ("small", 30)):
        add_model(slug, tmp_path / slug, size_bytes=mb * MB)
    daemon = serve(**BUDGET)
    client = daemon.client()

    # A slot load that does not fit: 503 with the budget, and the slot stays empty.
    refused = client.post("/api/admin/slots/load", json={"model": "huge", "slot": "alpha"})
    assert refused.status_code == 503
    message = error(refused)
    assert "needs about 150.0 MB" in message
    assert "budget is 100.0 MB (MLXCTL_MEMORY_BUDGET=100MB)" in message
    assert slots(daemon)[base]["desired"] is None and slots(daemon)[base]["live"] is None
    # --force stops foreign MLX servers on the port; it never overrides the budget.
    forced = {"model": "huge", "slot": "alpha", "force": True}
    assert client.post("/api/admin/slots/load", json=forced).status_code == 503

    loaded = client.post("/api/admin/slots/load", json={"model": "slotted", "slot": "alpha"})
    assert loaded.status_code == 200, loaded.text

    # On demand, 50 MB more would pass 100 MB: refused at once, naming what slots hold.
    chat = {"model": "big", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    too_big = client.post("/v1/chat/completions", json=chat)
    assert too_big.status_code == 503
    assert "slots hold 60.0 MB: alpha (slotted, 60.0 MB)" in error(too_big)
    assert client.post("/v1/chat/completions", json={**chat, "model": "small"}).status_code == 200
    status = client.get("/api/admin/status").json()
    assert status["used_bytes"] == 90 * MB <= status["budget_bytes"]
    assert status["pinned_bytes"] == 60 * MB
    assert set(daemon.ps()) == {"slotted", "small"}

    # A new daemon adopts the slot worker and counts it before the first request.
    pid = loaded.json()["live"]["pid"]
    daemon.stop(signal.SIGTERM)
    again = serve(**BUDGET)
    rows = again.ps()
    assert rows["slotted"]["pid"] == pid and rows["slotted"]["pinned"] is True
    assert again.client().get("/api/admin/status").json()["pinned_bytes"] == 60 * MB
    refused_again = again.client().post("/v1/chat/completions", json=chat)
    assert refused_again.status_code == 503 and "slots hold 60.0 MB" in error(refused_again)


def test_slot_aliases_are_model_names_in_every_dialect(
    serve: Serve, slot_env: dict[str, str], tmp_path: Path
) -> None:
    add_model("one", tmp_path / "one", repo_id="org/One")
    daemon = serve()
    client = daemon.client()
    empty = client.post("/v1/chat/completions", json={"model": "beta", "messages": []})
    assert empty.status_code == 404 and "slot" in empty.json()["error"]["message"]
    loaded = client.post("/api/admin/slots/load", json={"model": "org/One", "slot": "beta"})
    assert loaded.status_code == 200, loaded.text
    pid = loaded.json()["live"]["pid"]

    with httpx.HTTPTransport() as transport:
        ollama_client = ollama.Client(host=daemon.url, transport=transport)
        answer = ollama_client.chat(model="beta", messages=[{"role": "user", "content": "hi"}])
        running = ollama_client.ps().models
    assert answer.model == "one"
    assert [m.model for m in running] == ["one"]  # Ollama's ps lists the slot's model
    with anthropic.Anthropic(base_url=daemon.url, api_key="x", max_retries=0) as claude:
        hello: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
        reply = claude.messages.create(model="beta", max_tokens=4, messages=hello)
    assert reply.model == "one"
    # Loading it on demand is the slot's worker; unloading it on demand is refused.
    assert client.post("/api/admin/load", json={"model": "one"}).json()["pid"] == pid
    refused = client.post("/api/admin/unload", json={"model": "one"})
    assert refused.status_code == 409 and "unload beta" in refused.json()["error"]["message"]
    rows = daemon.ps()
    assert rows["one"]["pid"] == pid and rows["one"]["requests_total"] == 3
    wait_for(lambda: slots(daemon)[base_port(slot_env) + 1]["live"]["pid"] == pid)
