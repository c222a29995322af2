"""Every error the worker can answer with has the one OpenAI envelope.

`{"error": {"message", "type", "param", "code"}}`, nothing more, nothing less:
as a JSON body with a real status before the first byte, and as the final
`data:` event once a stream has begun. A scripted engine makes each path
deterministic; test_limits.py drives the same 429 and 400 through the real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlxctl.engine.generator import ContextOverflow, QueueFull
from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, serve, sse_lines
from tests.worker.fakes import Script, ScriptedEngine

CHAT = "/v1/chat/completions"
HELLO = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def assert_envelope(
    body: Any, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == type
    assert error["code"] == code
    assert error["param"] == param
    return dict(error)


@pytest.fixture(scope="module")
def scripted(model_path: Path, tokenizer: Any) -> Iterator[tuple[Running, ScriptedEngine]]:
    engine = ScriptedEngine(tokenizer, model_path)
    running = serve(ServedModel(id="scripted", path=model_path), lambda: engine)
    yield running, engine
    running.stop()


@pytest.fixture
def api(scripted: tuple[Running, ScriptedEngine]) -> Iterator[httpx.Client]:
    running, engine = scripted
    engine.script = Script()
    with httpx.Client(base_url=running.url, timeout=30) as c:
        yield c


@pytest.fixture
def engine(scripted: tuple[Running, ScriptedEngine]) -> ScriptedEngine:
    return scripted[1]


def test_unknown_route_404(api: httpx.Client) -> None:
    response = api.post("/v1/nope", json=HELLO)
    assert response.status_code == 404
    assert_envelope(response.json(), type="not_found_error", code="not_found")


def test_wrong_method_405(api: httpx.Client) -> None:
    response = api.get(CHAT)
    assert response.status_code == 405
    assert_envelope(response.json(), type="invalid_request_error", code="method_not_allowed")


def test_bad_json_400(api: httpx.Client) -> None:
    response = api.post(
        CHAT, content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", code="invalid_json")


def test_body_not_an_object_400(api: httpx.Client) -> None:
    response = api.post(CHAT, json=[1, 2])
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error")


def test_missing_messages_400(api: httpx.Client) -> None:
    response = api.post(CHAT, json={"max_tokens": 3})
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", param="messages")


def test_missing_prompt_400(api: httpx.Client) -> None:
    response = api.post("/v1/completions", json={"max_tokens": 3})
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", param="prompt")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"n": 2}, "n"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"functions": []}, "functions"),
        ({"mlxctl_unknown_field": 1}, "mlxctl_unknown_field"),
    ],
)
def test_unsupported_param_400(api: httpx.Client, extra: dict[str, Any], param: str) -> None:
    response = api.post(CHAT, json={**HELLO, **extra})
    assert response.status_code == 400
    assert_envelope(
        response.json(), type="invalid_request_error", code="unsupported_parameter", param=param
    )


def test_unsupported_completion_param_400(api: httpx.Client) -> None:
    response = api.post("/v1/completions", json={"prompt": "a", "echo": True})
    assert response.status_code == 400
    assert_envelope(
        response.json(), type="invalid_request_error", code="unsupported_parameter", param="echo"
    )


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"temperature": 5}, "temperature", None),
        ({"response_format": {"type": "grammar"}}, "response_format.type", None),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
            "unsupported_content",
        ),
    ],
)
def test_invalid_value_400(
    api: httpx.Client, extra: dict[str, Any], param: str, code: str | None
) -> None:
    response = api.post(CHAT, json={**HELLO, **extra})
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", param=param, code=code)


def test_context_overflow_400(api: httpx.Client, engine: ScriptedEngine) -> None:
    engine.script = Script(raise_on_submit=ContextOverflow(5000, 4096))
    response = api.post(CHAT, json=HELLO)
    assert response.status_code == 400
    error = assert_envelope(
        response.json(),
        type="invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )
    assert "4096" in error["message"] and "5000" in error["message"]


def test_queue_full_429(api: httpx.Client, engine: ScriptedEngine) -> None:
    engine.script = Script(raise_on_submit=QueueFull(retry_after=2.2))
    response = api.post(CHAT, json={**HELLO, "stream": True})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert_envelope(response.json(), type="rate_limit_error", code="queue_full")


def test_unexpected_engine_failure_500(api: httpx.Client, engine: ScriptedEngine) -> None:
    engine.script = Script(raise_on_submit=RuntimeError("kaboom"))
    response = api.post(CHAT, json=HELLO)
    assert response.status_code == 500
    error = assert_envelope(response.json(), type="server_error", code="internal_error")
    assert "kaboom" in error["message"]


def test_engine_error_before_any_token_500(api: httpx.Client, engine: ScriptedEngine) -> None:
    engine.script = Script(texts=[], finish="error", error="out of memory")
    response = api.post(CHAT, json={**HELLO, "stream": True})
    assert response.status_code == 500
    error = assert_envelope(response.json(), type="server_error", code="engine_error")
    assert "out of memory" in error["message"]


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
def test_mid_stream_engine_error_is_a_final_event(
    api: httpx.Client, engine: ScriptedEngine, path: str
) -> None:
    engine.script = Script(texts=["Hel", "lo"], finish="error", error="the engine was closed")
    body: dict[str, Any] = {"max_tokens": 4, "stream": True}
    body.update({"messages": HELLO["messages"]} if path == CHAT else {"prompt": "x"})
    with api.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        lines = sse_lines(response)
    assert "[DONE]" not in lines
    *chunks, last = [json.loads(line) for line in lines]
    assert any("Hel" in json.dumps(c) for c in chunks)
    error = assert_envelope(last, type="server_error", code="engine_error")
    assert "the engine was closed" in error["message"]


def test_mid_stream_exception_is_a_final_event(api: httpx.Client, engine: ScriptedEngine) -> None:
    engine.script = Script(texts=["a"], raise_after_texts=RuntimeError("lost the GPU"))
    with api.stream("POST", CHAT, json={**HELLO, "stream": True}) as response:
        lines = sse_lines(response)
    assert_envelope(json.loads(lines[-1]), type="server_error", code="internal_error")


def test_loading_503(model_path: Path, tokenizer: Any) -> None:
    release = threading.Event()

    def slow_load() -> ScriptedEngine:
        release.wait(30)
        return ScriptedEngine(tokenizer, model_path)

    running = serve(ServedModel(id="slow", path=model_path), slow_load, wait=False)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as api:
            assert api.get("/health").json()["status"] == "loading"
            response = api.post(CHAT, json=HELLO)
            assert response.status_code == 503 and response.headers["Retry-After"] == "1"
            assert_envelope(response.json(), type="server_error", code="loading")
            release.set()
            for _ in range(500):
                if api.get("/health").json()["status"] == "ok":
                    break
                threading.Event().wait(0.01)
            assert api.post(CHAT, json=HELLO).status_code == 200
    finally:
        release.set()
        running.stop()


def test_failed_load_503(model_path: Path) -> None:
    def broken() -> ScriptedEngine:
        raise RuntimeError("weights are corrupt")

    running = serve(ServedModel(id="broken", path=model_path), broken, wait=False)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as api:
            for _ in range(500):
                health = api.get("/health")
                if health.json()["status"] != "loading":
                    break
                threading.Event().wait(0.01)
            assert health.status_code == 503 and "weights are corrupt" in health.json()["error"]
            response = api.post(CHAT, json=HELLO)
            assert response.status_code == 503
            assert_envelope(response.json(), type="server_error", code="load_failed")
    finally:
        running.stop()
