"""The OpenAI Responses API through the official `openai` client, real daemon and worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import THOUGHT, TOOLS_CALL, module_daemon

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def _force(text: str) -> dict[str, Any]:
    return {"mlxctl_test_force": text}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"MLXCTL_RESPONSES_MAX": "4"}
    with module_daemon(tmp_path_factory.mktemp("responses"), env) as running:
        yield running


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{daemon.url}/v1", api_key="unused", max_retries=0) as shared:
        yield shared


def test_plain(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="q",
        instructions="Be brief.",
        input="Weather in Paris?",
        max_output_tokens=40,
        extra_body=_force("Sunny."),
    )
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.status == "completed" and reply.model == "q" and reply.error is None
    assert reply.output_text == "Sunny." and reply.instructions == "Be brief."
    (message,) = reply.output
    assert message.type == "message" and message.role == "assistant"
    assert message.status == "completed" and message.content[0].type == "output_text"
    assert reply.usage is not None and reply.usage.input_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


def test_message_list_and_max_output_tokens(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="q",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"role": "assistant", "content": "Which city?"},
            {"type": "message", "role": "user", "content": "Paris."},
        ],
        max_output_tokens=2,
        extra_body=_force("It is sunny in Paris today."),
    )
    assert reply.status == "incomplete" and reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None and reply.usage.output_tokens == 2
    assert reply.max_output_tokens == 2


def test_stream_events(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="q", input="Weather?", stream=True, extra_body=_force("Sunny and warm.")
        )
    )
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Sunny and warm."
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == "Sunny and warm."
    # the SDK's own accumulator checks every event against the state it builds
    with client.responses.stream(
        model="q", input="Weather?", extra_body=_force("Sunny and warm.")
    ) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert "".join(texts) == response.output_text == "Sunny and warm."


def test_forced_tool_call_and_its_output(client: openai.OpenAI) -> None:
    asked = client.responses.create(
        model="q", input="Weather in Paris?", tools=TOOLS, extra_body=_force(TOOLS_CALL)
    )
    (call,) = [item for item in asked.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id and call.status == "completed"
    with client.responses.stream(
        model="q", input="Weather in Paris?", tools=TOOLS, extra_body=_force(TOOLS_CALL)
    ) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    (again,) = [item for item in streamed.output if item.type == "function_call"]
    assert json.loads(again.arguments) == {"city": "Paris"}
    answer = client.responses.create(
        model="q",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "clear"}],
        tools=TOOLS,
        extra_body=_force("It is clear."),
    )
    assert answer.output_text == "It is clear."
    assert answer.previous_response_id == asked.id
    # the same conversation sent whole, without the stored state, reads the same
    whole = client.responses.create(
        model="q",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "clear"},
        ],
        tools=TOOLS,
        store=False,
        extra_body=_force("It is clear."),
    )
    assert whole.usage is not None and answer.usage is not None
    assert whole.usage.input_tokens == answer.usage.input_tokens


def test_previous_response_id_across_three_turns(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="q",
        instructions="You are a weather bot.",
        input="Weather in Paris?",
        extra_body=_force("Sunny."),
    )
    second = client.responses.create(
        model="q",
        previous_response_id=first.id,
        input="And tomorrow?",
        extra_body=_force("Rain."),
    )
    third = client.responses.create(
        model="q",
        previous_response_id=second.id,
        input="And the day after?",
        extra_body=_force("Snow."),
    )
    assert third.output_text == "Snow."
    usages = [r.usage for r in (first, second, third)]
    assert all(usage is not None for usage in usages)
    assert usages[0] and usages[1] and usages[2]
    assert usages[0].input_tokens < usages[1].input_tokens < usages[2].input_tokens
    # the second turn's prompt begins with the first's: the worker's prompt cache serves it
    cached = [usage.input_tokens_details.cached_tokens for usage in usages if usage]
    assert cached[1] > 0 and cached[2] > cached[1]
    # the stored response and its own input
    assert client.responses.retrieve(second.id).output_text == "Rain."
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "And tomorrow?"  # type: ignore[union-attr]


def test_delete_and_missing_ids(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="q", input="Hi", extra_body=_force("Hello."))
    deleted = client.responses.delete(reply.id)
    assert deleted is None  # the SDK returns nothing for a 200 delete
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(reply.id)
    assert missing.value.code == "response_not_found"
    assert missing.value.param == "response_id" and missing.value.type == "not_found_error"
    with pytest.raises(openai.NotFoundError) as continued:
        client.responses.create(model="q", input="Hi", previous_response_id=reply.id)
    assert continued.value.code == "response_not_found"
    assert continued.value.param == "previous_response_id"


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="q", input="Hi", store=False, extra_body=_force("Hello."))
    assert reply.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)


def test_the_store_is_bounded(client: openai.OpenAI) -> None:
    # MLXCTL_RESPONSES_MAX=4 for this daemon: the oldest of five is gone
    ids = [
        client.responses.create(model="q", input="Hi", extra_body=_force("Hello.")).id
        for _ in range(5)
    ]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(ids[0])
    assert [client.responses.retrieve(i).id for i in ids[1:]] == ids[1:]


def test_json_schema_is_enforced(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    text: Any = {"format": {"type": "json_schema", "name": "city", "schema": schema}}
    reply = client.responses.create(model="q", input="Which city?", text=text, max_output_tokens=60)
    assert reply.status == "completed"
    jsonschema.validate(json.loads(reply.output_text), schema)
    assert reply.text is not None and reply.text.format is not None
    assert reply.text.format.type == "json_schema"


def test_reasoning_summary(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="q",
        input="Weather?",
        reasoning={"effort": "medium", "summary": "auto"},
        extra_body=_force(THOUGHT),
    )
    kinds = [item.type for item in reply.output]
    assert kinds == ["reasoning", "message"]
    reasoning = reply.output[0]
    assert reasoning.type == "reasoning" and "First, the sky." in reasoning.summary[0].text
    assert reply.output_text.strip() == "It is sunny."
    with client.responses.stream(
        model="q",
        input="Weather?",
        reasoning={"effort": "medium", "summary": "auto"},
        extra_body=_force(THOUGHT),
    ) as stream:
        summary = [e.delta for e in stream if e.type == "response.reasoning_summary_text.delta"]
        final = stream.get_final_response()
    assert "First, the sky." in "".join(summary)
    assert [item.type for item in final.output] == ["reasoning", "message"]


def test_errors_in_openai_envelope(daemon: Daemon, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model="q", input="Hi", extra_body={"frobnicate": 1})
    assert unknown.value.param == "frobnicate"
    with pytest.raises(openai.NotFoundError) as model:
        client.responses.create(model="nope", input="Hi")
    assert model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as image:
        client.responses.create(
            model="q",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
        )
    assert "input_image" in image.value.message
    # found by the fuzz run: reasoning alone leaves nothing to answer
    for bad_input in ([], [{"type": "reasoning"}]):
        raw = httpx.post(f"{daemon.url}/v1/responses", json={"model": "q", "input": bad_input})
        assert raw.status_code == 400
        assert raw.json()["error"]["type"] == "invalid_request_error"
        assert raw.json()["error"]["param"] == "input"


def test_reasoning_without_a_summary_is_reasoning_text(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="q", input="Weather?", reasoning={"effort": "low"}, extra_body=_force(THOUGHT)
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in kinds
    assert "response.reasoning_summary_text.delta" not in kinds
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary == []
    assert reasoning.content and "First, the sky." in reasoning.content[0].text
