"""The text stream as pure text: stops, reasoning, tool calls, Harmony; fed in every split."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.worker.textstream import (
    Delta,
    HarmonyStream,
    OutputStream,
    StreamSyntax,
    TextStream,
    ToolSyntax,
    make_stream,
    split_at_marker,
)


def _json_tool(text: str, tools: Any) -> Any:
    return json.loads(text.strip())


QWEN = StreamSyntax(
    think=("<think>", "</think>"),
    tool=ToolSyntax("<tool_call>", "</tool_call>", _json_tool, "json_tools"),
    reasoning_parser="think",
)
TOOLS = [{"type": "function", "function": {"name": "f"}}]


def run(stream: OutputStream, pieces: Iterable[str]) -> tuple[Delta, list[Delta]]:
    """Feed pieces, finish, and return the merged output plus each delta."""
    deltas = [stream.feed(p) for p in pieces]
    deltas.append(stream.finish())
    total = Delta()
    for d in deltas:
        total.content += d.content
        total.reasoning += d.reasoning
        total.tool_calls += d.tool_calls
    return total, deltas


def splits(text: str) -> list[list[str]]:
    """The text whole, char by char, and cut at every single position."""
    cuts = [[text], list(text)]
    cuts += [[text[:i], text[i:]] for i in range(1, len(text))]
    return cuts


def test_split_at_marker() -> None:
    assert split_at_marker("abc<th", ["<think>"]) == ("abc", None, "<th")
    assert split_at_marker("a<think>b", ["<think>"]) == ("a", "<think>", "b")
    assert split_at_marker("xSTO", ["STOP", "TOP"]) == ("x", None, "STO")
    # The earliest marker wins; at one position the longest.
    assert split_at_marker("a<b<bc", ["<bc", "<b"]) == ("a", "<b", "<bc")
    assert split_at_marker("plain", []) == ("plain", None, "")


@pytest.mark.parametrize("pieces", splits("Hello wor" + "ld. END of story"))
def test_stop_string_never_emitted_in_any_split(pieces: list[str]) -> None:
    stream = TextStream(StreamSyntax(), stop=["END", "NEVER"])
    total, deltas = run(stream, pieces)
    assert total.content == "Hello world. "
    assert stream.stopped
    assert all("E" not in d.content for d in deltas)


def test_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    stream = TextStream(StreamSyntax(), stop=["END"])
    assert stream.feed("The EN").content == "The"
    assert stream.feed("D").content == " "  # completed the stop; the blank before it is text
    stream = TextStream(StreamSyntax(), stop=["END"])
    stream.feed("The EN")
    assert stream.feed("VOY").content == " ENVOY"
    assert stream.finish().content == ""


def test_finish_releases_or_drops_held_text() -> None:
    stream = TextStream(StreamSyntax(), stop=["END"])
    stream.feed("xE")
    assert stream.finish().content == "E"  # output ended: it was text after all
    stream = TextStream(StreamSyntax(), stop=["END"])
    stream.feed("xE")
    assert stream.finish(drop=True).content == ""  # the engine matched "END" by tokens


@pytest.mark.parametrize("pieces", splits("<think>\nStep one.\n</think>\n\nAnswer."))
def test_reasoning_is_separated(pieces: list[str]) -> None:
    total, deltas = run(TextStream(QWEN), pieces)
    assert (total.reasoning, total.content) == ("Step one.", "Answer.")
    assert all("<" not in d.content + d.reasoning for d in deltas)


def test_prompt_opened_think_starts_in_reasoning() -> None:
    total, _ = run(TextStream(QWEN, starts_in_reasoning=True), ["Hmm.\n</think>\n\n", "Yes."])
    assert (total.reasoning, total.content) == ("Hmm.", "Yes.")


def test_unfinished_reasoning_is_flushed_as_reasoning() -> None:
    total, _ = run(TextStream(QWEN), ["<think>still going "])
    assert (total.reasoning, total.content) == ("still going ", "")


def test_without_think_markers_text_is_content() -> None:
    total, _ = run(TextStream(StreamSyntax()), ["<think>x</think>y"])
    assert total.content == "<think>x</think>y"


CALL = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'


@pytest.mark.parametrize("pieces", splits("Sure.\n" + CALL))
def test_tool_call_is_parsed(pieces: list[str]) -> None:
    total, deltas = run(TextStream(QWEN, tools=TOOLS), pieces)
    assert total.content == "Sure."
    (call,) = total.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("f", {"a": 1})
    assert call.id.startswith("call_")
    assert all("tool_call" not in d.content for d in deltas)


def test_two_tool_calls_and_reasoning_before() -> None:
    text = "<think>need f twice</think>" + CALL + "\n" + CALL.replace('"a": 1', '"a": 2')
    total, _ = run(TextStream(QWEN, tools=TOOLS), [text])
    assert total.reasoning == "need f twice" and total.content == ""
    assert [json.loads(c.arguments)["a"] for c in total.tool_calls] == [1, 2]
    assert len({c.id for c in total.tool_calls}) == 2


def test_tool_markers_are_text_when_no_tools_were_offered() -> None:
    total, _ = run(TextStream(QWEN), [CALL])
    assert total.content == CALL and not total.tool_calls


def test_unparseable_tool_call_stays_visible() -> None:
    bad = "<tool_call>\nnot json\n</tool_call>"
    total, _ = run(TextStream(QWEN, tools=TOOLS), [bad])
    assert total.content == bad and not total.tool_calls


def test_unterminated_tool_call_is_parsed_at_the_end() -> None:
    total, _ = run(TextStream(QWEN, tools=TOOLS), ['<tool_call>{"name": "f", "arguments": {}}'])
    assert [c.name for c in total.tool_calls] == ["f"]


def test_completions_stream_ignores_markers() -> None:
    stream = make_stream(QWEN, stop=["!"], chat=False)
    total, _ = run(stream, ["<think>a</think>b!c"])
    assert total.content == "<think>a</think>b"


HARMONY = (
    "<|channel|>analysis<|message|>User wants weather.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>"
)


@pytest.mark.parametrize("pieces", splits(HARMONY)[:2] + splits(HARMONY)[20:60:7])
def test_harmony_analysis_and_final(pieces: list[str]) -> None:
    total, deltas = run(HarmonyStream(), pieces)
    assert (total.reasoning, total.content) == ("User wants weather.", "It is sunny.")
    assert all("<|" not in d.content + d.reasoning for d in deltas)


def test_harmony_commentary_tool_call() -> None:
    text = (
        "<|channel|>analysis<|message|>Need the tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather "
        '<|constrain|>json<|message|>{"city": "Paris"}<|call|>'
    )
    total, _ = run(HarmonyStream(), [text])
    assert total.reasoning == "Need the tool." and total.content == ""
    (call,) = total.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}


def test_harmony_recipient_before_channel_and_call_token_stripped() -> None:
    # <|call|> is an EOS the engine may not decode: finish() closes the body.
    text = '<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{"q": 1}'
    total, _ = run(HarmonyStream(), list(text))
    assert [(c.name, json.loads(c.arguments)) for c in total.tool_calls] == [("lookup", {"q": 1})]


def test_harmony_stop_string_in_final() -> None:
    stream = HarmonyStream(stop=["sunny"])
    total, _ = run(stream, [HARMONY])
    assert total.content == "It is " and stream.stopped


def test_syntax_from_a_harmony_vocab() -> None:
    class Tok:
        has_thinking = False
        has_tool_calling = False

        def get_vocab(self) -> dict[str, int]:
            return {"<|channel|>": 1, "<|message|>": 2}

    syntax = StreamSyntax.from_tokenizer(Tok())
    assert syntax.harmony and syntax.reasoning_parser == "harmony"
    assert isinstance(make_stream(syntax), HarmonyStream)


def test_syntax_from_the_factory_tokenizer(tokenizer: Any) -> None:
    syntax = StreamSyntax.from_tokenizer(tokenizer)
    assert syntax.think == ("<think>", "</think>")
    assert syntax.tool is not None and syntax.tool.name == "json_tools"
    assert (syntax.tool.start, syntax.tool.end) == ("<tool_call>", "</tool_call>")
    off = StreamSyntax.from_tokenizer(tokenizer, reasoning_parser="none", tool_parser="pythonic")
    assert off.think is None and off.tool is not None and off.tool.name == "pythonic"


def test_unknown_tool_parser_names_the_known_ones(tokenizer: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        StreamSyntax.from_tokenizer(tokenizer, tool_parser="no_such_parser")
    assert "json_tools" in str(info.value.hint)


@pytest.mark.parametrize("name", ["harmony", "gpt_oss", "openai"])
def test_a_harmony_parser_name_makes_a_harmony_stream(tokenizer: Any, name: str) -> None:
    syntax = StreamSyntax.from_tokenizer(tokenizer, tool_parser=name, reasoning_parser=name)
    assert syntax.harmony and syntax.tool is None and syntax.tool_parser == "harmony"
    assert syntax.reasoning_parser == "harmony"
    assert isinstance(make_stream(syntax), HarmonyStream)


def test_seed_names_resolve_to_the_parser_that_handles_them(tokenizer: Any) -> None:
    syntax = StreamSyntax.from_tokenizer(
        tokenizer, tool_parser="qwen3_moe", reasoning_parser="qwen3"
    )
    assert syntax.tool is not None and syntax.tool.name == "json_tools"
    assert syntax.tool_parser == "json_tools" and syntax.think == ("<think>", "</think>")
    stream = make_stream(syntax, tools=[{"type": "function", "function": {"name": "f"}}])
    total, _ = run(stream, ['<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'])
    assert [(c.name, c.arguments) for c in total.tool_calls] == [("f", '{"a": 1}')]
