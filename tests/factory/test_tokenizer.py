"""Factory tokenizers: round trips, special tokens, chat templates, mlx-lm's inferences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from mlxctl.engine import mlxlm
from mlxctl.factory.tokenizer import FAMILIES, tokenizer_info, train_bpe
from tests.factory.conftest import Built

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 12:30, isn't it?",
    "def add(a: int, b: int) -> int:\n    return a + b  # sum\n\n\n",
    "   leading spaces, trailing tab\t and \r\n windows newlines ",
    "naïve café, Grüße, São Paulo, Ελληνικά, Русский, עברית, العربية",
    "日本語のテキスト、中文文本、한국어 텍스트",
    "emoji 🙂🚀👍🏽 and a ZWJ family 👨‍👩‍👧 and a flag 🇫🇷",
    'JSON {"name": "get_weather", "arguments": {"city": "Paris"}}',
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
TOOL_TURNS: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and Lyon?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            CALL,
            {"function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}},
        ],
    },
    {"role": "tool", "content": "21 C"},
    {"role": "tool", "content": "19 C"},
    {"role": "assistant", "content": "Paris 21 C, Lyon 19 C."},
]


FAMILY = {"qwen2": "chatml", "llama": "llama3", "gpt_oss": "harmony"}


# One architecture per chat family: the hybrid and sliding models reuse chatml.
@pytest.fixture(scope="module", params=list(FAMILY))
def arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _hf(path: Path) -> Any:
    return AutoTokenizer.from_pretrained(path)


def _render(path: Path, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    return str(_hf(path).apply_chat_template(messages, tokenize=False, **kwargs))


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(built: Built, arch: str, text: str) -> None:
    path = built(arch)
    hf = _hf(path)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    ids = hf.encode(text, add_special_tokens=False)
    assert hf.decode(ids) == text
    # transformers rebuilds qwen2 pre-tokenizers; the file must agree with what it builds.
    assert raw.encode(text, add_special_tokens=False).ids == ids
    _, wrapper = mlxlm.load(path)
    assert wrapper.decode(wrapper.encode(text, add_special_tokens=False)) == text


def test_bos_is_added_only_for_llama(built: Built) -> None:
    llama, qwen = _hf(built("llama")), _hf(built("qwen2"))
    assert llama.encode("hi")[0] == llama.convert_tokens_to_ids("<|begin_of_text|>")
    assert llama.decode(llama.encode("hi"), skip_special_tokens=True) == "hi"
    assert qwen.encode("hi") == qwen.encode("hi", add_special_tokens=False)


def test_special_tokens_are_single_ids_after_the_bpe(built: Built, arch: str) -> None:
    path = built(arch)
    hf = _hf(path)
    family = FAMILIES[FAMILY[arch]]
    ids = [hf.convert_tokens_to_ids(t.content) for t in family.tokens]
    assert ids == list(range(2048, 2048 + len(family.tokens)))
    for token, token_id in zip(family.tokens, ids, strict=True):
        assert hf.encode(token.content, add_special_tokens=False) == [token_id]
        kept = hf.decode([token_id], skip_special_tokens=True)
        assert kept == ("" if token.special else token.content)


def test_chatml_renders_system_user_assistant(built: Built) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Again"}]},
    ]
    assert _render(built("qwen2"), messages, add_generation_prompt=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nAgain<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_default_system_and_no_generation_prompt(built: Built) -> None:
    assert _render(built("qwen2"), [{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
    )


def test_chatml_renders_tools_calls_and_results(built: Built) -> None:
    text = _render(built("qwen2"), TOOL_TURNS, tools=TOOLS, add_generation_prompt=True)
    system = text.split("<|im_end|>")[0]
    assert "<tools>\n" + json.dumps(TOOLS[0], ensure_ascii=False) + "\n</tools>" in system
    assert "<tool_call>" in system  # the instructions show the call format
    assert (
        "<|im_start|>assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>'
        "<|im_end|>\n"
    ) in text
    assert (
        "<|im_start|>user\n<tool_response>\n21 C\n</tool_response>\n"
        "<tool_response>\n19 C\n</tool_response><|im_end|>\n"
    ) in text
    assert text.endswith("Paris 21 C, Lyon 19 C.<|im_end|>\n<|im_start|>assistant\n")


def test_chatml_thinking(built: Built) -> None:
    path = built("qwen2")
    user = [{"role": "user", "content": "Hi"}]
    off = _render(path, user, add_generation_prompt=True, enable_thinking=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    on = _render(path, user, add_generation_prompt=True, enable_thinking=True)
    assert on.endswith("<|im_start|>assistant\n")
    reasoned = [*user, {"role": "assistant", "content": "Hello", "reasoning_content": "greet"}]
    assert "<|im_start|>assistant\n<think>\ngreet\n</think>\n\nHello<|im_end|>" in _render(
        path, reasoned
    )


def test_llama3_renders_turns_tools_and_results(built: Built) -> None:
    path = built("llama")
    plain = _render(path, [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert plain == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    messages = [{"role": "system", "content": "Be brief."}, *TOOL_TURNS]
    text = _render(path, messages, tools=TOOLS)
    assert text.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\n"
    )
    assert json.dumps(TOOLS[0], indent=4, ensure_ascii=False) in text
    assert (
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city": "Paris"}}\n'
        '{"name": "get_weather", "parameters": {"city": "Lyon"}}<|eot_id|>'
    ) in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n21 C<|eot_id|>" in text
    assert text.endswith("Paris 21 C, Lyon 19 C.<|eot_id|>")


def test_harmony_renders_instructions_tools_calls_and_results(built: Built) -> None:
    path = built("gpt_oss")
    messages = [{"role": "system", "content": "Be brief."}, *TOOL_TURNS]
    text = _render(path, messages, tools=TOOLS, add_generation_prompt=True)
    assert text.startswith("<|start|>system<|message|>You are a helpful assistant.\nReasoning: ")
    assert "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools" in text
    assert "type get_weather = (_: {" in text and "// Current weather for a city" in text
    assert "<|start|>user<|message|>Weather in Paris and Lyon?<|end|>" in text
    call = (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris"}<|call|>'
    )
    assert call in text and '<|message|>{"city": "Lyon"}<|call|>' in text
    result = (
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>21 C<|end|>"
    )
    assert result in text
    assert "<|channel|>final<|message|>Paris 21 C, Lyon 19 C.<|end|>" in text
    assert text.endswith("<|start|>assistant")
    thinking = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello.",
                "reasoning_content": "Greet back."}]  # fmt: skip
    rendered = _render(path, thinking)
    assert "<|channel|>analysis<|message|>Greet back.<|end|>" in rendered
    assert "developer" not in rendered  # no instructions, no tools


def test_mlx_lm_finds_no_tool_parser_for_harmony(built: Built) -> None:
    # Harmony has no tool-call markers mlx-lm knows: the worker's HarmonyStream handles it.
    assert mlxlm.infer_tool_parser(_hf(built("gpt_oss"))) is None


def test_mlx_lm_infers_qwen2_tools_and_thinking(built: Built) -> None:
    path = built("qwen2")
    assert mlxlm.infer_tool_parser(_hf(path)) == "json_tools"
    _, tokenizer = mlxlm.load(path)
    assert tokenizer.has_tool_calling and tokenizer.tool_call_start == "<tool_call>"
    assert tokenizer.has_thinking and tokenizer.think_start == "<think>"
    assert tokenizer.think_end_id == tokenizer.convert_tokens_to_ids("</think>")
    rendered = tokenizer.apply_chat_template(TOOL_TURNS[:2], tokenize=False)
    body = rendered.split("<tool_call>")[1].split("</tool_call>")[0]
    assert tokenizer.tool_parser(body) == {"name": "get_weather", "arguments": {"city": "Paris"}}


def test_mlx_lm_finds_no_tool_parser_for_llama3(built: Built) -> None:
    path = built("llama")
    assert mlxlm.infer_tool_parser(_hf(path)) is None
    _, tokenizer = mlxlm.load(path)
    assert not tokenizer.has_thinking


def test_mlx_lm_streams_with_the_bpe_detokenizer(built: Built, arch: str) -> None:
    _, tokenizer = mlxlm.load(built(arch))
    detokenizer = tokenizer.detokenizer
    assert type(detokenizer).__name__ == "BPEStreamingDetokenizer"
    text = "Streaming " + TEXTS[3] + " " + TEXTS[5]
    for token in tokenizer.encode(text, add_special_tokens=False):
        detokenizer.add_token(token)
    detokenizer.finalize()
    assert detokenizer.text == text


def test_generation_stops_at_end_of_turn(built: Built, arch: str) -> None:
    path = built(arch)
    model, tokenizer = mlxlm.load(path)
    end = tokenizer.convert_tokens_to_ids(FAMILIES[FAMILY[arch]].eos)
    assert end in tokenizer.eos_token_ids

    def force_end(tokens: mx.array, logits: mx.array) -> mx.array:
        return logits + mx.where(mx.arange(logits.shape[-1]) == end, 1e4, 0.0)

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True
    )
    out = list(
        mlxlm.stream_generate(model, tokenizer, prompt, max_tokens=5, logits_processors=[force_end])
    )
    assert len(out) == 1 and out[0].token == end and out[0].finish_reason == "stop"


def test_training_is_cached_and_ids_are_stable() -> None:
    assert train_bpe("chatml", 2048) is train_bpe("chatml", 2048)
    info = tokenizer_info("chatml", 2048)
    assert info.special_ids["<|im_end|>"] == info.eos_token_id == 2050
    assert info.eos_token_ids == (2050, 2048)
    llama = tokenizer_info("llama3", 2048)
    assert (llama.bos_token_id, llama.eos_token_id) == (2048, 2053)
