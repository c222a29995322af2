"""The Anthropic Messages API through the official `anthropic` client, real daemon and worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import THOUGHT, TOOLS_CALL, module_daemon

JSON = {"content-type": "application/json"}

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]


def _force(text: str) -> dict[str, Any]:
    return {"mlxctl_test_force": text}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with module_daemon(tmp_path_factory.mktemp("anthropic")) as running:
        yield running


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=daemon.url, api_key="unused", max_retries=0) as shared:
        yield shared


def test_message(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="q",
        max_tokens=6,
        system="Be brief.",
        messages=ASK,
        extra_body={"temperature": 0.0, "top_k": 5, "top_p": 0.9},  # not in this SDK version
    )
    assert reply.type == "message" and reply.role == "assistant" and reply.model == "q"
    assert reply.id.startswith("msg_")
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 0 and 0 < reply.usage.output_tokens <= 6
    assert all(block.type == "text" for block in reply.content)


def test_system_blocks_and_multi_turn(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="q",
        max_tokens=20,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            *ASK,
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
            {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
        ],
        stop_sequences=["\n\n"],
        extra_body=_force("Rain."),
    )
    assert reply.content[0].type == "text" and reply.content[0].text == "Rain."
    assert reply.stop_reason == "end_turn"


def test_stop_sequence_is_named(client: anthropic.Anthropic) -> None:
    ask: dict[str, Any] = {"model": "q", "max_tokens": 20, "messages": ASK}
    reply = client.messages.create(
        **ask, stop_sequences=["END", "there"], extra_body=_force("Hello there. Bye.")
    )
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "there"
    assert reply.content[0].type == "text" and reply.content[0].text == "Hello "
    with client.messages.stream(
        **ask, stop_sequences=["Bye"], extra_body=_force("Hello there. Bye.")
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "Bye"
    plain = client.messages.create(**ask, stop_sequences=["zzz"], extra_body=_force("Hi."))
    assert plain.stop_reason == "end_turn" and plain.stop_sequence is None


def test_stream(client: anthropic.Anthropic, daemon: Daemon) -> None:
    with client.messages.stream(model="q", max_tokens=6, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert text == "".join(b.text for b in final.content if b.type == "text")
    body = {"model": "q", "max_tokens": 6, "messages": ASK, "stream": True}
    body.update(_force("Hello there."))
    raw = daemon.client().post("/v1/messages", json=body)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line[7:] for line in raw.text.split("\n") if line.startswith("event: ")]
    assert events[0] == "message_start" and events[1] == "content_block_start"
    assert set(events[2:-3]) == {"content_block_delta"}
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_tool_use(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="q", max_tokens=60, messages=ASK, tools=TOOLS, extra_body=_force(TOOLS_CALL)
    )
    assert reply.stop_reason == "tool_use"
    (block,) = [b for b in reply.content if b.type == "tool_use"]
    assert block.name == "get_weather" and block.input == {"city": "Paris"} and block.id
    with client.messages.stream(
        model="q", max_tokens=60, messages=ASK, tools=TOOLS, extra_body=_force(TOOLS_CALL)
    ) as stream:
        final = stream.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.input == {"city": "Paris"} and final.stop_reason == "tool_use"
    # the result goes back as a tool_result block
    result = {"type": "tool_result", "tool_use_id": block.id, "content": '{"sky": "clear"}'}
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [result]},
    ]
    answer = client.messages.create(
        model="q", max_tokens=20, tools=TOOLS, messages=history, extra_body=_force("It is clear.")
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "It is clear."


def test_thinking(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="q",
        max_tokens=2000,
        messages=ASK,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=_force(THOUGHT),
    )
    kinds = [b.type for b in reply.content]
    assert kinds == ["thinking", "text"]
    assert reply.content[0].type == "thinking" and "First, the sky." in reply.content[0].thinking
    with client.messages.stream(
        model="q",
        max_tokens=2000,
        messages=ASK,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=_force(THOUGHT),
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="q", system="Be brief.", messages=ASK)
    reply = client.messages.create(model="q", max_tokens=1, system="Be brief.", messages=ASK)
    assert counted.input_tokens == reply.usage.input_tokens > 0
    with_tools = client.messages.count_tokens(model="q", messages=ASK, tools=TOOLS)
    assert with_tools.input_tokens > counted.input_tokens


FIVE = {"model": "q", "max_tokens": 5, "messages": ASK}
TEXT5 = {"type": "text", "text": 5}


def test_integral_float_max_tokens_is_an_integer(client: anthropic.Anthropic) -> None:
    # JSON has one number type: 2.0 is the integer the document promises (the fuzz run sent it).
    reply = client.messages.create(model="q", max_tokens=2.0, messages=ASK)  # type: ignore[arg-type]
    assert reply.usage.output_tokens <= 2


def test_errors_use_the_anthropic_envelope(client: anthropic.Anthropic, daemon: Daemon) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=5, messages=ASK)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="q", max_tokens=5, messages=ASK, extra_body={"bogus": 1})
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    http = daemon.client()
    cases: list[tuple[str, Any, int, str]] = [
        ("/v1/messages", {"model": "q", "messages": ASK}, 400, "max_tokens"),
        ("/v1/messages", {"model": "q", "max_tokens": 5, "messages": []}, 400, "messages"),
        (
            "/v1/messages",
            {"model": "q", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            400,
            "role",
        ),
        (
            "/v1/messages",
            {
                "model": "q",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}],
            },
            400,
            "image",
        ),
        (
            "/v1/messages",
            {"model": "q", "max_tokens": 5, "messages": ASK, "tool_choice": {"type": "any"}},
            400,
            "tool_choice",
        ),
        (
            "/v1/messages",
            {"model": "q", "max_tokens": 5, "messages": ASK, "temperature": 9},
            400,
            "temperature",
        ),
        ("/v1/messages/count_tokens", {"model": "nope", "messages": ASK}, 404, "nope"),
        (
            "/v1/messages/count_tokens",
            {"model": "q", "messages": ASK, "max_tokens": 3},
            400,
            "max_tokens",
        ),
        ("/v1/messages/no-such-route", {}, 404, "Unknown route"),
        # Found by the fuzz run (tests/api/openapi): wrong types were taken as absent.
        ("/v1/messages", {**FIVE, "stream": {}}, 400, "stream"),
        ("/v1/messages", {**FIVE, "tools": {}}, 400, "tools"),
        ("/v1/messages", {**FIVE, "stop_sequences": "x"}, 400, "stop_sequences"),
        ("/v1/messages", {**FIVE, "messages": [{"role": "user", "content": [TEXT5]}]}, 400, "text"),
        ("/v1/messages/count_tokens", {"model": "q", "messages": ASK, "tools": {}}, 400, "tools"),
    ]
    for path, body, status, needle in cases:
        response = http.post(path, json=body)
        assert response.status_code == status, (body, response.text)
        data = response.json()
        assert data["type"] == "error" and set(data["error"]) == {"type", "message"}, data
        assert data["error"]["type"] == (
            "not_found_error" if status == 404 else "invalid_request_error"
        )
        assert needle in data["error"]["message"], (needle, data)
    broken = http.post("/v1/messages", content=b"{not json", headers=JSON)
    assert broken.status_code == 400 and broken.json()["type"] == "error"
    assert json.loads(broken.text)["error"]["type"] == "invalid_request_error"
