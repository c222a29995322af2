"""Messages → prompt through the model's template, the registry override, tools and kwargs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlxctl.engine.templatebox import TemplateSandbox
from mlxctl.worker.chat import ChatPrompter, encode_prompt
from mlxctl.worker.openai_errors import APIError

THINK = ("<think>", "</think>")


def test_renders_with_the_tokenizer_template(tokenizer: Any) -> None:
    prompter = ChatPrompter(tokenizer, think_markers=THINK)
    rendered = prompter.render([{"role": "user", "content": "hi"}])
    assert prompter.template_source == "tokenizer"
    assert rendered.text.endswith("<|im_start|>assistant\n")
    assert rendered.tokens == tokenizer.encode(rendered.text, add_special_tokens=False)
    assert not rendered.starts_in_reasoning


def test_tools_and_tool_results(tokenizer: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = [
        {"role": "user", "content": "Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    text = ChatPrompter(tokenizer).render(messages, tools=tools).text
    assert "get_weather" in text.split("<|im_end|>")[0]  # tools listed in the system turn
    # Arguments sent as a JSON string are rendered once, not as a quoted string.
    assert '"arguments": {"city": "Paris"}' in text
    assert "<tool_response>\nsunny\n</tool_response>" in text


def test_enable_thinking_false(tokenizer: Any) -> None:
    prompter = ChatPrompter(tokenizer, think_markers=THINK)
    off = prompter.render(
        [{"role": "user", "content": "hi"}], template_kwargs={"enable_thinking": False}
    )
    assert off.text.endswith("<think>\n\n</think>\n\n")
    assert not off.starts_in_reasoning


def test_registry_template_override(tokenizer: Any, tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] <think>\n{% endif %}"
    )
    prompter = ChatPrompter(tokenizer, template_path=template, think_markers=THINK)
    rendered = prompter.render([{"role": "user", "content": "hi"}])
    assert prompter.template_source == f"registry:{template}"
    assert rendered.text == "[user] hi\n[assistant] <think>\n"
    assert rendered.starts_in_reasoning


def test_broken_template_is_a_400(tokenizer: Any, tmp_path: Path) -> None:
    template = tmp_path / "bad.jinja"
    template.write_text("{{ raise_exception('no system messages') }}")
    with pytest.raises(APIError) as info:
        ChatPrompter(tokenizer, template_path=template).render([{"role": "user", "content": "x"}])
    assert info.value.status == 400 and "no system messages" in info.value.message


@pytest.mark.parametrize(
    "function",
    [{"name": "f", "arguments": 5}, {"name": 7, "arguments": "{}"}, {"arguments": "{}"}],
)
def test_a_tool_call_the_template_cannot_read_is_a_400(tokenizer: Any, function: Any) -> None:
    # Found by the fuzz run (tests/api/openapi): these reached the template as they were.
    call = {"id": "c1", "type": "function", "function": function}
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(APIError) as info:
        ChatPrompter(tokenizer).render(messages)
    assert info.value.status == 400 and "tool call" in info.value.message.lower()


def test_encode_prompt(tokenizer: Any) -> None:
    assert encode_prompt(tokenizer, [1, 2]) == [1, 2]
    assert encode_prompt(tokenizer, "hello") == tokenizer.encode("hello")


def test_a_client_template_renders_in_the_sandbox(tokenizer: Any) -> None:
    sandbox = TemplateSandbox(timeout=5, max_chars=10_000)
    try:
        prompter = ChatPrompter(tokenizer, sandbox=sandbox, system="Be brief.")
        template = (
            "{{ eos_token }}{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}"
            "{{ flavour }}"
        )
        rendered = prompter.render(
            [{"role": "user", "content": "hi"}],
            template_kwargs={"chat_template": template, "flavour": "!"},
        )
        assert rendered.text == f"{tokenizer.eos_token}system=Be brief.;user=hi;!"
        assert rendered.tokens == tokenizer.encode(rendered.text, add_special_tokens=False)
        with pytest.raises(APIError) as info:
            prompter.render([{"role": "user", "content": "x"}], template_kwargs={
                "chat_template": "{% for a in range(100000) %}{{ a }}{% endfor %}"
            })  # fmt: skip
        assert info.value.param == "chat_template_kwargs.chat_template"
        assert "longer than 10000 characters" in info.value.message
    finally:
        sandbox.close()


def test_client_templates_need_the_sandbox(tokenizer: Any) -> None:
    with pytest.raises(APIError) as info:
        ChatPrompter(tokenizer).render(
            [{"role": "user", "content": "x"}], template_kwargs={"chat_template": "{{ 1 }}"}
        )
    assert info.value.status == 400 and info.value.param == "chat_template_kwargs.chat_template"


def test_a_prompt_beyond_max_chars_is_a_400(tokenizer: Any) -> None:
    prompter = ChatPrompter(tokenizer, max_chars=300)
    assert prompter.render([{"role": "user", "content": "short"}]).tokens
    with pytest.raises(APIError) as info:
        prompter.render([{"role": "user", "content": "x" * 400}])
    assert (
        info.value.code == "prompt_too_long" and "MLXCTL_TEMPLATE_MAX_CHARS" in info.value.message
    )
