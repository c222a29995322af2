"""Peers end to end: three real daemons (a, b, c) on loopback; `tiny` is on b and c only.
Requests to a reach b or c through a, with the official clients; the model lists show
every host's models; a conversation sticks to its host (its prompt cache is there); a
killed peer is marked down, its requests fail over or fail clearly, and it is taken
back when it returns; a forwarded request is never forwarded again."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import ollama
import openai
import pytest

from mlxctl.peers import FORWARDED_BY, SERVED_BY
from tests.api.conftest import sse_lines
from tests.cli.runner import Run
from tests.peers.conftest import MODEL, Hosts, wait_for

USER = [{"role": "user", "content": "Say something about peers."}]


@pytest.fixture(scope="module")
def peers_up(hosts: Hosts) -> Hosts:
    wait_for(lambda: all(row["up"] for row in hosts.view(hosts.a).values()))
    return hosts


def chat(host_url: str, model: str, messages: list[dict[str, Any]], **more: Any) -> httpx.Response:
    body = {"model": model, "messages": messages, "max_tokens": 6, "temperature": 0, **more}
    return httpx.post(f"{host_url}/v1/chat/completions", json=body, timeout=60)


def test_every_hosts_models_are_listed(peers_up: Hosts, run: Run, monkeypatch: Any) -> None:
    a = peers_up.a
    with openai.OpenAI(base_url=f"{a.url}/v1", api_key="x") as client:
        ids = {m.id for m in client.models.list()}
        assert getattr(client.models.retrieve(f"{MODEL}@c"), "host", None) == "c"
    assert {f"{MODEL}@b", f"{MODEL}@c", MODEL} <= ids
    with httpx.HTTPTransport() as transport:
        tags = {m.model for m in ollama.Client(host=a.url, transport=transport).list().models}
    assert {f"{MODEL}@b", f"{MODEL}@c", MODEL} <= tags
    # A peer's own reads (marked as forwarded) see only that host's models: no echoes.
    own = httpx.get(f"{peers_up.b.url}/v1/models", headers={FORWARDED_BY: "a"}).json()
    assert [m["id"] for m in own["data"]] == [MODEL]

    monkeypatch.setenv("MLXCTL_HOST", a.url)
    listed = run("list", "--all", "--json").ok().json()
    assert {(r["slug"], r["host"]) for r in listed} == {(f"{MODEL}@b", "b"), (f"{MODEL}@c", "c")}
    assert run("list", "--all").ok().out.count(f"{MODEL}@") == 2
    httpx.post(f"{peers_up.c.url}/api/admin/load", json={"model": MODEL}, timeout=60)
    wait_for(lambda: hosts_loaded(peers_up) >= {"c"})
    loaded = run("ps", "--all", "--json").ok().json()
    assert f"{MODEL}@c" in {r["model"] for r in loaded}


def hosts_loaded(hosts: Hosts) -> set[str]:
    """The peers that a last read with `tiny` ready."""
    views = hosts.view(hosts.a).values()
    ready = [(v["name"], r) for v in views for r in v["loaded"]]
    return {name for name, r in ready if r["model"] == MODEL and r["state"] == "ready"}


def test_openai_client_streams_through_a_from_a_peer(peers_up: Hosts) -> None:
    client = openai.OpenAI(base_url=f"{peers_up.a.url}/v1", api_key="x", max_retries=0)
    with (
        client,
        client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=USER,
            max_tokens=6,
            temperature=0,
            stream=True,  # type: ignore[arg-type]
        ) as response,
    ):
        assert response.headers[SERVED_BY] in ("b", "c")
        chunks = list(response.parse())
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason is not None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Byte for byte: the SSE stream ends as the peer's does.
    raw = httpx.post(
        f"{peers_up.a.url}/v1/chat/completions",
        json={"model": f"{MODEL}@c", "messages": USER, "max_tokens": 4, "stream": True},
        timeout=60,
    )
    assert raw.headers[SERVED_BY] == "c"
    assert sse_lines(raw.content)[-1] == b"[DONE]"


def test_ollama_client_and_model_at_host(peers_up: Hosts) -> None:
    before = peers_up.c.up().ps().get(MODEL, {}).get("requests_total", 0)
    with httpx.HTTPTransport() as transport:
        stream = ollama.Client(host=peers_up.a.url, transport=transport).chat(
            model=f"{MODEL}@c", messages=USER, stream=True, options={"num_predict": 5}
        )
        parts = list(stream)
    assert parts[-1].done and parts[-1].eval_count
    assert peers_up.c.up().ps()[MODEL]["requests_total"] > before


def test_a_conversation_sticks_to_the_host_with_its_cache(peers_up: Hosts) -> None:
    for host in (peers_up.b, peers_up.c):
        httpx.post(f"{host.url}/api/admin/load", json={"model": MODEL}, timeout=60)
    wait_for(lambda: hosts_loaded(peers_up) == {"b", "c"})
    conversations = [
        [{"role": "system", "content": f"You are helper number {n}."}, *USER] for n in range(3)
    ]
    first: list[str] = []
    for messages in conversations:
        answer = chat(peers_up.a.url, MODEL, messages)
        assert answer.status_code == 200, answer.text
        first.append(answer.headers[SERVED_BY])
        messages += [answer.json()["choices"][0]["message"], {"role": "user", "content": "More."}]
    assert set(first) == {"b", "c"}, "new conversations spread over the hosts"
    for messages, host in zip(conversations, first, strict=True):
        answer = chat(peers_up.a.url, MODEL, messages)
        assert answer.headers[SERVED_BY] == host
        assert answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


def test_no_loops_and_errors_in_the_callers_dialect(peers_up: Hosts) -> None:
    a, b, c = peers_up.a, peers_up.b, peers_up.c
    b.peers(a=a.url, c=c.url)  # a and b now peers of each other
    wait_for(lambda: all(row["up"] for row in peers_up.view(b).values()))
    started = time.monotonic()
    missing = chat(a.url, "nosuch", USER)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    anthropic = httpx.post(
        f"{a.url}/v1/messages",
        json={"model": "nosuch", "max_tokens": 5, "messages": USER},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert anthropic.status_code == 404 and anthropic.json()["type"] == "error"
    # a → b for b's model of that name: b answers itself, never back to a.
    bounced = chat(a.url, "nosuch@b", USER)
    assert bounced.status_code == 404 and bounced.headers[SERVED_BY] == "b"
    assert time.monotonic() - started < 5
    # A request marked as forwarded is answered here or not at all.
    marked = httpx.post(
        f"{b.url}/v1/chat/completions",
        json={"model": f"{MODEL}@c", "messages": USER, "max_tokens": 3},
        headers={FORWARDED_BY: "a"},
    )
    assert marked.status_code == 404 and "forwarded" in marked.json()["error"]["message"]
    onward = chat(b.url, f"{MODEL}@c", USER)
    assert onward.status_code == 200 and onward.headers[SERVED_BY] == "c"


def test_a_killed_peer_is_marked_down_failed_over_and_taken_back(peers_up: Hosts) -> None:
    a, c = peers_up.a, peers_up.c
    c.up().stop(signal.SIGKILL)  # kill -9: no goodbye
    killed = time.monotonic()
    wait_for(lambda: not peers_up.view(a)["c"]["up"], timeout=10)
    assert time.monotonic() - killed < 5
    for _ in range(3):  # every request fails over to b
        answer = chat(a.url, MODEL, USER)
        assert answer.status_code == 200 and answer.headers[SERVED_BY] == "b"
    down = chat(a.url, f"{MODEL}@c", USER)
    assert down.status_code == 503
    message = down.json()["error"]["message"]
    assert "peer 'c'" in message and "down" in message
    assert "Retry-After" in down.headers
    ids = {m["id"] for m in httpx.get(f"{a.url}/v1/models").json()["data"]}
    assert f"{MODEL}@c" not in ids and f"{MODEL}@b" in ids

    c.start()
    wait_for(lambda: peers_up.view(a)["c"]["up"], timeout=10)
    back = chat(a.url, f"{MODEL}@c", USER)
    assert back.status_code == 200 and back.headers[SERVED_BY] == "c"
