"""ModelSpec text: every instruction parses, prints back canonically, and errors name the line."""

from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.store.content.modelspec import ModelSpec, format_spec, parse_spec

FULL = '''# A spec with every instruction.
from tiny:latest
PARAMETER temperature 0.2
PARAMETER top_k 20
PARAMETER stop "<|im_end|>"
PARAMETER stop <|endoftext|>
TEMPLATE """{% for m in messages %}<|{{ m.role }}|>{{ m.content }}
{% endfor %}<|assistant|>"""
SYSTEM You are a terse assistant.
MESSAGE user """What is 2+2?
Answer briefly."""
MESSAGE assistant 4
ADAPTER ./adapters
PARSER tool json_tools
PARSER reasoning think
LICENSE MIT
LICENSE """Second license,
two lines."""
QUANTIZE 4 32
'''


def test_every_instruction_is_read() -> None:
    spec = parse_spec(FULL)
    assert spec == ModelSpec(
        base="tiny:latest",
        parameters=(
            ("temperature", 0.2),
            ("top_k", 20),
            ("stop", "<|im_end|>"),
            ("stop", "<|endoftext|>"),
        ),
        template="{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n"
        "{% endfor %}<|assistant|>",
        system="You are a terse assistant.",
        messages=(("user", "What is 2+2?\nAnswer briefly."), ("assistant", "4")),
        adapter="./adapters",
        tool_parser="json_tools",
        reasoning_parser="think",
        licenses=("MIT", "Second license,\ntwo lines."),
        quantize=4,
        group_size=32,
    )
    assert spec.options() == {
        "temperature": 0.2,
        "top_k": 20,
        "stop": ["<|im_end|>", "<|endoftext|>"],
    }


def test_canonical_text_round_trips() -> None:
    spec = parse_spec(FULL)
    text = format_spec(spec)
    assert parse_spec(text) == spec
    assert format_spec(parse_spec(text)) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        " leading",
        "trailing ",
        'ends with "',
        'has """ inside',
        "two\nlines",
        "\ttab",
        "a\r\nb",
        "line\u2028separator",
        "trailing  \nspaces",
        '"quoted"',
        "x\n",
    ],
)
def test_any_text_survives_a_round_trip(value: str) -> None:
    spec = ModelSpec(base="m", system=value, messages=(("user", value),), licenses=(value,))
    assert parse_spec(format_spec(spec)) == spec


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("FROM m\n\n# ok\nPARAMETR temperature 1\n", "ModelSpec:4: unknown instruction 'PARAMETR'"),
        ("FROM m\nPARAMETER temprature 1\n", "ModelSpec:2: unknown parameter 'temprature'"),
        ("FROM m\nPARAMETER top_k 1.5\n", "ModelSpec:2: PARAMETER top_k: '1.5' is not an int"),
        (
            'FROM m\nTEMPLATE """{{ x }}\nnever closed\n',
            'ModelSpec:2: TEMPLATE: """ is never closed',
        ),
        ("FROM m\nSYSTEM a\nSYSTEM b\n", "ModelSpec:3: SYSTEM given twice (first on line 2)"),
        ("FROM m\nMESSAGE robot hi\n", "ModelSpec:2: MESSAGE role 'robot'"),
        ("FROM m\nPARSER tools json\n", "ModelSpec:2: PARSER kind 'tools'"),
        ("FROM m\nQUANTIZE 7\n", "ModelSpec:2: QUANTIZE '7'"),
        ('FROM m\nSYSTEM "unterminated\n', "ModelSpec:2: SYSTEM: the quoted text is not"),
        ("PARAMETER temperature 1\n", "ModelSpec:1: no FROM instruction"),
        ("FROM a b\n", "ModelSpec:1: FROM needs one model name"),
    ],
)
def test_a_bad_spec_names_the_line_at_fault(text: str, error: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_spec(text)
    assert str(info.value.message).startswith(error)


def test_hints_suggest_the_instruction_meant() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_spec("FROM m\nPARAMETR temperature 1\n", source="specs/ModelSpec")
    assert info.value.message == "specs/ModelSpec:2: unknown instruction 'PARAMETR'"
    assert info.value.hint == "did you mean PARAMETER?"
