"""Request bodies → RequestSpec: what is honoured, what is refused (and named), what is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from mlxctl.openai_fields import TEST_FORCE_FIELD
from mlxctl.worker.openai_errors import APIError
from mlxctl.worker.requests import parse_chat, parse_completion

MSG = [{"role": "user", "content": "hi"}]


def chat(**body: Any) -> Any:
    return parse_chat({"messages": MSG, **body}, vocab_size=1000)


def refused(fn: Any, body: dict[str, Any]) -> APIError:
    with pytest.raises(APIError) as info:
        fn(body, vocab_size=1000)
    assert info.value.status == 400
    return info.value


def test_sampling_fields_map_to_sampling_params() -> None:
    spec = chat(
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        seed=3,
        repetition_penalty=1.1,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        logit_bias={"17": -100, "3": 5.5},
        logprobs=True,
        top_logprobs=4,
        max_completion_tokens=12,
        stop="END",
    )
    s = spec.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.seed) == (0.5, 0.9, 40, 0.05, 3)
    assert (s.repetition_penalty, s.frequency_penalty, s.presence_penalty) == (1.1, 0.5, -0.5)
    assert s.logit_bias == {17: -100.0, 3: 5.5}
    assert s.logprobs and s.top_logprobs == 4
    assert spec.max_tokens == 12 and spec.stop == ["END"]


def test_defaults_follow_openai() -> None:
    spec = chat()
    assert spec.sampling.temperature == 1.0 and spec.sampling.top_p == 1.0
    assert spec.max_tokens is None and not spec.stream and spec.stop == []


def test_harmless_fields_are_ignored() -> None:
    spec = chat(
        model="anything",
        user="u",
        metadata={"k": "v"},
        store=False,
        service_tier="auto",
        parallel_tool_calls=True,
        modalities=["text"],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert spec.stream and spec.include_usage


def test_developer_role_becomes_system_and_parts_are_joined() -> None:
    spec = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    )
    assert spec.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ab"},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 3}, "n"),
        ({"audio": {}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {}}, "prediction"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({TEST_FORCE_FIELD: "x"}, TEST_FORCE_FIELD),  # only with test hooks on
        ({"response_format": {"type": "regex"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.schema",
        ),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", ""]}, "stop"),
        ({"stop": [str(i) for i in range(20)]}, "stop"),
        ({"logit_bias": {"x": 1}}, "logit_bias"),
        ({"logit_bias": {"5000": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 500}}, "logit_bias"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"chat_template_kwargs": "nope"}, "chat_template_kwargs"),
        # Found by the fuzz run (tests/api/openapi): wrong types were taken as absent.
        ({"chat_template_kwargs": False}, "chat_template_kwargs"),
        ({"max_tokens": {}, "max_completion_tokens": 1}, "max_tokens"),
        (
            {"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]},
            "messages[0].tool_call_id",
        ),
        (
            {"messages": [{"role": "assistant", "reasoning_content": []}]},
            "messages[0].reasoning_content",
        ),
        ({"messages": [{"role": "assistant", "tool_calls": 5}]}, "messages[0].tool_calls"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": 5}}]},
            "tools[0].function.description",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        ({"logit_bias": {"+5": 1}}, "logit_bias"),
        ({"logit_bias": {"1_0": 1}}, "logit_bias"),
        ({"stop": ["x" * 257]}, "stop"),
        ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
        # A template of the client's own: refused unless MLXCTL_ALLOW_CLIENT_TEMPLATES.
        ({"chat_template_kwargs": {"chat_template": "{{ 'x' * 10**10 }}"}},
         "chat_template_kwargs.chat_template"),
        ({"chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs.tokenize"),
        ({"chat_template_kwargs": {"return_dict": True}}, "chat_template_kwargs.return_dict"),
    ],
)  # fmt: skip
def test_chat_refusals_name_the_param(body: dict[str, Any], param: str) -> None:
    assert refused(parse_chat, {"messages": MSG, **body}).param == param


@pytest.mark.parametrize("role", [{}, []])
def test_a_role_that_is_not_a_string_is_a_400(role: Any) -> None:
    # Found by the fuzz run (tests/api/openapi): `{} in set` raised TypeError, a 500.
    body = {"messages": [{"role": role, "content": "x"}]}
    assert refused(parse_chat, body).param == "messages[0].role"


def test_limits_at_their_edge_are_accepted() -> None:
    spec = chat(stop=["y" * 256] * 2 + [str(i) for i in range(14)])
    assert len(spec.stop) == 15  # duplicates folded
    assert len(chat(logit_bias={str(i): 1 for i in range(300)}).sampling.logit_bias) == 300
    assert chat(chat_template_kwargs={"enable_thinking": False}).template_kwargs == {
        "enable_thinking": False
    }


def test_client_templates_only_when_allowed() -> None:
    kwargs = {"chat_template": "{{ messages[0].content }}", "flag": 1}
    spec = parse_chat(
        {"messages": MSG, "chat_template_kwargs": kwargs}, vocab_size=10, client_templates=True
    )
    assert spec.template_kwargs == kwargs
    with pytest.raises(APIError) as info:
        parse_chat(
            {"messages": MSG, "chat_template_kwargs": {"chat_template": 3}},
            vocab_size=10,
            client_templates=True,
        )
    assert info.value.param == "chat_template_kwargs.chat_template"
    message = refused(parse_chat, {"messages": MSG, "chat_template_kwargs": kwargs}).message
    assert "MLXCTL_ALLOW_CLIENT_TEMPLATES=1" in message


def test_test_hook_field_needs_test_hooks() -> None:
    spec = parse_chat({"messages": MSG, TEST_FORCE_FIELD: "forced"}, vocab_size=10, test_hooks=True)
    assert spec.force_text == "forced"


def test_tool_choice_none_drops_the_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert chat(tools=tools).tools == tools
    assert chat(tools=tools, tool_choice="none").tools is None


def test_response_formats() -> None:
    assert chat(response_format={"type": "text"}).response_format is None
    assert chat(response_format={"type": "json_object"}).response_format == {"type": "json_object"}
    schema = {"type": "object"}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert chat(response_format=fmt).response_format == {"type": "json_schema", "schema": schema}


def test_integral_floats_are_integers() -> None:
    # JSON has one number type: 8.0 is the integer the OpenAPI document allows.
    spec = chat(max_tokens=8.0, top_k=40.0, seed=3.0, n=1.0)
    assert (spec.max_tokens, spec.sampling.top_k, spec.sampling.seed) == (8, 40, 3)
    assert parse_completion({"prompt": [1.0, 2.0]}, vocab_size=10).prompt == [1, 2]
    assert refused(parse_chat, {"messages": MSG, "max_tokens": 8.5}).param == "max_tokens"


def test_completion_prompts() -> None:
    assert parse_completion({"prompt": "hi"}, vocab_size=10).prompt == "hi"
    assert parse_completion({"prompt": ["hi"]}, vocab_size=10).prompt == "hi"
    assert parse_completion({"prompt": [1, 2, 3]}, vocab_size=10).prompt == [1, 2, 3]
    assert parse_completion({"prompt": [[1, 2]]}, vocab_size=10).prompt == [1, 2]
    spec = parse_completion({"prompt": "x", "logprobs": 3}, vocab_size=10)
    assert spec.sampling.logprobs and spec.sampling.top_logprobs == 3


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 5000]}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": [""]}, "prompt"),
        ({"prompt": "a", "echo": True}, "echo"),
        ({"prompt": "a", "suffix": "z"}, "suffix"),
        ({"prompt": "a", "best_of": 2}, "best_of"),
        ({"prompt": "a", "logprobs": 9}, "logprobs"),
        ({"prompt": "a", "messages": MSG}, "messages"),
    ],
)
def test_completion_refusals(body: dict[str, Any], param: str) -> None:
    assert refused(parse_completion, body).param == param
