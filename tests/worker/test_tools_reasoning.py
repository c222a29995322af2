"""Tool calls and reasoning, forced through the real engine.

A random model never calls a tool, so these tests use the test-only
`mlxctl_test_force` field: a logits processor that lets exactly the given text's
tokens through, then EOS. Everything after the logits (sampler, detokenizer,
text stream, SSE) is the real path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, engine_loader, serve

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
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _force(text: str) -> dict[str, Any]:
    return {"mlxctl_test_force": text}


def test_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=ASK, tools=TOOLS, max_tokens=60, extra_body=_force(CALL)
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(
        model="m",
        messages=ASK,
        tools=TOOLS,
        max_tokens=60,
        stream=True,
        extra_body=_force("Let me check.\n" + CALL),
    ):
        delta = chunk.choices[0].delta
        assert "<tool_call>" not in (delta.content or "")
        for part in delta.tool_calls or []:
            entry = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += part.id or ""
            entry["name"] += (part.function.name or "") if part.function else ""
            entry["arguments"] += (part.function.arguments or "") if part.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


def test_tool_markers_without_tools_stay_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=ASK, max_tokens=60, extra_body=_force(CALL)
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == CALL


def test_tool_results_round_trip(client: openai.OpenAI) -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
    ]
    reply = client.chat.completions.create(
        model="m", messages=messages, tools=TOOLS, max_tokens=20, extra_body=_force("It is clear.")
    )
    assert reply.choices[0].message.content == "It is clear."
    assert reply.usage is not None and reply.usage.prompt_tokens > 50


THOUGHT = "<think>\nFirst, the sky.\n</think>\n\nIt is sunny."


def test_reasoning_is_separated(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=ASK, max_tokens=60, extra_body=_force(THOUGHT)
    )
    message = reply.choices[0].message
    assert message.content == "It is sunny."
    assert getattr(message, "reasoning_content", None) == "First, the sky."


def test_streamed_reasoning_never_leaks_markers(client: openai.OpenAI) -> None:
    content, reasoning = "", ""
    for chunk in client.chat.completions.create(
        model="m", messages=ASK, max_tokens=60, stream=True, extra_body=_force(THOUGHT)
    ):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += getattr(delta, "reasoning_content", None) or ""
    assert (reasoning, content) == ("First, the sky.", "It is sunny.")


def test_enable_thinking_false_is_passed_to_the_template(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        max_tokens=10,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, **_force("Plain.")},
    )
    plain = client.chat.completions.create(
        model="m", messages=ASK, max_tokens=10, extra_body=_force("Plain.")
    )
    assert reply.choices[0].message.content == "Plain."
    assert reply.usage is not None and plain.usage is not None
    # The template closes an empty <think></think> block when thinking is off.
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens


_OPEN_THINK_TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n<think>\n{%- endif -%}"
)


@pytest.fixture(scope="module")
def thinking_worker(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A worker whose registry template opens <think> in the prompt (Qwen3 style)."""
    template = tmp_path_factory.mktemp("templates") / "open-think.jinja"
    template.write_text(_OPEN_THINK_TEMPLATE)
    info = ServedModel(id="thinker", path=model_path, chat_template=str(template))
    running = serve(info, engine_loader(model_path, max_batch=2))
    yield running
    running.stop()


def test_prompt_that_opens_think_starts_in_reasoning(thinking_worker: Running) -> None:
    with thinking_worker.client() as client:
        reply = client.chat.completions.create(
            model="m",
            messages=ASK,
            max_tokens=60,
            extra_body=_force("Hmm, Paris.\n</think>\n\nSunny."),
        )
    message = reply.choices[0].message
    assert getattr(message, "reasoning_content", None) == "Hmm, Paris."
    assert message.content == "Sunny."
    assert thinking_worker.state.prompter.template_source.startswith("registry:")
