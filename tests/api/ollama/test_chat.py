"""The Ollama dialect through the official `ollama` client, against a real daemon and worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import THOUGHT, TOOLS_CALL, module_daemon, ps_pids

JSON = {"content-type": "application/json"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ASK = [{"role": "user", "content": "Weather in Paris?"}]
FEW = {"num_predict": 6, "temperature": 0.0, "seed": 1}


class ForceTransport(httpx.HTTPTransport):
    """Adds the worker's test-only `mlxctl_test_force` field to each JSON body."""

    force: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.force is not None and request.method == "POST":
            body = {**json.loads(request.content), "mlxctl_test_force": self.force}
            headers = {k: v for k, v in request.headers.items() if k != "content-length"}
            request = httpx.Request(request.method, request.url, headers=headers, json=body)
        return super().handle_request(request)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with module_daemon(tmp_path_factory.mktemp("ollama")) as running:
        yield running


@pytest.fixture(scope="module")
def transport() -> Iterator[ForceTransport]:
    with ForceTransport() as shared:  # one connection pool for every client; closed at the end
        yield shared


@pytest.fixture
def client(daemon: Daemon, transport: ForceTransport) -> Iterator[ollama.Client]:
    transport.force = None
    yield ollama.Client(host=daemon.url, transport=transport)
    transport.force = None


def _check_final(final: Any) -> None:
    assert final.done is True and final.done_reason in ("stop", "length")
    assert final.prompt_eval_count > 0 and 0 < final.eval_count <= 6
    for name in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert getattr(final, name) > 0, name
    assert final.load_duration >= 0
    assert final.total_duration >= final.prompt_eval_duration + final.eval_duration


def test_root_and_version(daemon: Daemon) -> None:
    http = daemon.client()
    assert http.get("/").text == "mlxctl is running"
    assert http.head("/").status_code == 200
    assert http.get("/api/version").json()["version"]


def test_chat(client: ollama.Client) -> None:
    reply = client.chat(model="q", messages=ASK, stream=False, options=FEW)
    assert reply.message.role == "assistant" and isinstance(reply.message.content, str)
    assert reply.model == "q"
    _check_final(reply)


def test_chat_streams_by_default(daemon: Daemon) -> None:
    body = {"model": "q", "messages": ASK, "options": FEW}
    with daemon.client().stream("POST", "/api/chat", json=body) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]


def test_chat_stream(client: ollama.Client) -> None:
    chunks = list(client.chat(model="q", messages=ASK, stream=True, options=FEW))
    assert all(not c.done for c in chunks[:-1])
    _check_final(chunks[-1])
    text = "".join(c.message.content or "" for c in chunks)
    assert isinstance(text, str)


def test_prefill_time_is_prompt_eval_not_eval(client: ollama.Client) -> None:
    # A long prompt, then the same again: the second reuses its KV from the prompt cache.
    long = " ".join(f"word{i}" for i in range(600))
    cold, warm = (
        client.chat(
            model="q",
            messages=[{"role": "user", "content": long}],
            options={"temperature": 0, "num_predict": 2},
        )
        for _ in range(2)
    )
    assert cold.prompt_eval_count == warm.prompt_eval_count > 600
    # Prefilling 600 tokens is most of a 2-token reply's time, and the cache removes it.
    assert cold.prompt_eval_duration > 0.5 * (cold.total_duration - cold.load_duration)
    assert cold.prompt_eval_duration > 3 * warm.prompt_eval_duration


def test_generate(client: ollama.Client) -> None:
    reply = client.generate(model="q", prompt="Hello", system="Be brief.", options=FEW)
    assert isinstance(reply.response, str)
    _check_final(reply)
    chunks = list(client.generate(model="q", prompt="Hello", raw=True, options=FEW, stream=True))
    _check_final(chunks[-1])


def test_num_ctx_does_not_reload(daemon: Daemon, client: ollama.Client) -> None:
    client.chat(model="q", messages=ASK, stream=False, options=FEW)
    before = ps_pids(daemon)
    client.chat(model="q", messages=ASK, stream=False, options={**FEW, "num_ctx": 32768})
    assert ps_pids(daemon) == before


def test_format_schema(client: ollama.Client, transport: ForceTransport) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    transport.force = '{"city": "Paris"}'
    reply = client.chat(
        model="q", messages=ASK, format=schema, stream=False, options={"num_predict": 40}
    )
    assert json.loads(reply.message.content or "") == {"city": "Paris"}


def test_tools(client: ollama.Client, transport: ForceTransport) -> None:
    transport.force = TOOLS_CALL
    reply = client.chat(model="q", messages=ASK, tools=TOOLS, stream=False)
    (call,) = reply.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}
    streamed = [c for c in client.chat(model="q", messages=ASK, tools=TOOLS, stream=True)]
    calls = [call for c in streamed for call in c.message.tool_calls or []]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    # the tool's answer goes back with tool_name
    transport.force = "It is clear."
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": '{"sky": "clear"}', "tool_name": "get_weather"},
    ]
    answer = client.chat(model="q", messages=history, tools=TOOLS, stream=False)
    assert answer.message.content == "It is clear."


def test_think(client: ollama.Client, transport: ForceTransport) -> None:
    transport.force = THOUGHT
    reply = client.chat(model="q", messages=ASK, think=True, stream=False)
    assert "First, the sky." in (reply.message.thinking or "")
    assert (reply.message.content or "").strip() == "It is sunny."
    chunks = list(client.generate(model="q", prompt="Sky?", think=True, stream=True))
    assert "First, the sky." in "".join(c.thinking or "" for c in chunks)


def test_tags_show_ps(daemon: Daemon, client: ollama.Client) -> None:
    (model,) = [m for m in client.list().models if m.model == "q"]
    assert model.details is not None and model.details.family == "qwen2"
    assert (model.size or 0) > 0
    shown = client.show("q")
    assert shown.capabilities and "completion" in shown.capabilities
    assert shown.template and shown.modelinfo and shown.modelinfo["general.architecture"]
    client.chat(model="q", messages=ASK, stream=False, options=FEW)
    (running,) = client.ps().models
    assert running.model == "q" and (running.size or 0) > 0 and running.expires_at


def test_keep_alive_load_and_unload(daemon: Daemon, client: ollama.Client) -> None:
    # Past any date is forever: /api/ps used to overflow on it (a 500).
    forever = client.generate(model="q", prompt="", keep_alive=1e308)
    assert forever.done_reason == "load" and daemon.ps()["q"]["keep_alive"] is None
    (running,) = client.ps().models
    assert running.expires_at is not None and running.expires_at.year > 2300
    loaded = client.generate(model="q", prompt="", keep_alive="10m")
    assert loaded.done and loaded.done_reason == "load"
    assert "q" in daemon.ps()
    unloaded = client.generate(model="q", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "q" not in daemon.ps()
    client.chat(model="q", messages=ASK, stream=False, options=FEW, keep_alive=0)
    deadline = time.monotonic() + 10  # keep_alive 0: unloads once the reply has gone out
    while "q" in daemon.ps() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "q" not in daemon.ps()


def test_copy_and_delete(daemon: Daemon, client: ollama.Client) -> None:
    client.copy("q", "q-copy:latest")
    names = {m.model for m in client.list().models}
    assert "q-copy:latest" in names or "q-copy" in names
    copied = "q-copy:latest" if "q-copy:latest" in names else "q-copy"
    reply = client.chat(model=copied, messages=ASK, stream=False, options=FEW, keep_alive=0)
    assert reply.done
    client.delete(copied)
    assert copied not in {m.model for m in client.list().models}
    assert Path(client.show("q").modelfile or "").name != ""  # the original is untouched


def test_every_error_is_in_the_ollama_envelope(daemon: Daemon, client: ollama.Client) -> None:
    http = daemon.client()
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/chat", {"model": "nope", "messages": ASK}, 404, "nope"),
        ("POST", "/api/chat", {"model": "q", "messages": ASK, "bogus": 1}, 400, "bogus"),
        (
            "POST",
            "/api/chat",
            {"model": "q", "messages": ASK, "options": {"mirostat": 1}},
            400,
            "mirostat",
        ),
        ("POST", "/api/chat", {"model": "q", "messages": ASK, "think": "high"}, 400, "think"),
        ("POST", "/api/chat", {"model": "q", "messages": ASK, "format": 3}, 400, "format"),
        ("POST", "/api/chat", {"messages": ASK}, 400, "model"),
        ("POST", "/api/generate", {"model": "q", "prompt": "x", "context": [1, 2]}, 400, "context"),
        (
            "POST",
            "/api/generate",
            {"model": "q", "prompt": "x", "template": "{{ .Prompt }}"},
            400,
            "template",
        ),
        (
            "POST",
            "/api/generate",
            {"model": "q", "prompt": "x", "options": {"top_p": 7}},
            400,
            "top_p",
        ),
        ("POST", "/api/show", {"model": "nope"}, 404, "nope"),
        ("DELETE", "/api/delete", {"model": "nope"}, 404, "nope"),
        ("POST", "/api/copy", {"source": "q"}, 400, "destination"),
        ("POST", "/api/embed", {"model": "nope", "input": "x"}, 404, "nope"),
        ("POST", "/api/embeddings", {"model": "q", "prompt": 5}, 400, "prompt"),
        ("POST", "/api/pull", {}, 400, "'model' is required"),
        # Found by the fuzz run (tests/api/openapi): stream false answered 500 for any failure.
        ("POST", "/api/pull", {"model": "zzz", "stream": False}, 400, "does not name a registry"),
        ("POST", "/api/pull", {"model": {}, "name": "a/b"}, 400, "'model' must be a string"),
        # Found by the fuzz run: tool_calls 5 was a 500; wrong types were taken as absent.
        (
            "POST",
            "/api/chat",
            {"model": "q", "messages": [{**ASK[0], "tool_calls": 5}]},
            400,
            "tool_calls",
        ),
        ("POST", "/api/show", {"model": 5, "name": "q"}, 400, "'model' must be a string"),
        ("POST", "/api/chat", {"model": "q", "tools": {}}, 400, "tools"),
        ("POST", "/api/chat", {"model": "q", "messages": ASK, "stream": "yes"}, 400, "stream"),
        (
            "POST",
            "/api/chat",
            {"model": "q", "messages": [{"role": "user", "content": 5}]},
            400,
            "content",
        ),
        ("POST", "/api/chat", {"model": "q", "messages": [{"role": "robot"}]}, 400, "role"),
        ("POST", "/api/generate", {"model": "q", "context": {}}, 400, "context"),
        ("POST", "/api/generate", {"model": "q", "prompt": 0}, 400, "prompt"),
        ("POST", "/api/generate", {"model": "q", "raw": "yes"}, 400, "raw"),
        ("POST", "/api/embed", {"model": "q", "input": "", "keep_alive": ""}, 400, "keep_alive"),
        ("POST", "/api/embed", {"model": "q", "input": "", "truncate": "no"}, 400, "truncate"),
        ("POST", "/api/no-such-route", {}, 404, "Unknown route"),
        ("GET", "/api/chat", None, 405, "not allowed"),
    ]
    for method, path, body, status, needle in cases:
        response = http.request(method, path, json=body)
        assert response.status_code == status, (path, body, response.text)
        data = response.json()
        assert list(data) == ["error"] and isinstance(data["error"], str), data
        assert needle in data["error"], (needle, data)
    bad = http.post("/api/chat", content=b"{not json", headers=JSON)
    assert bad.status_code == 400 and list(bad.json()) == ["error"]
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nope", messages=ASK)
    assert caught.value.status_code == 404 and "nope" in caught.value.error
