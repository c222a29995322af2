"""JSON bodies with a nesting limit."""

from __future__ import annotations

import json

import pytest

from mlxctl.httpguard import MAX_DEPTH, parse_json
from mlxctl.httpguard.jsonbody import nesting_depth
from mlxctl.openai_error import APIError


def test_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth(b"1") == 0
    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert nesting_depth(json.dumps({"s": 'q"[[' + "\\" * 3}).encode()) == 1


def test_parse_json_refuses_deep_nesting_with_a_400() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(ok) is not None
    for depth in (MAX_DEPTH + 1, 100_000):  # the second would be a RecursionError
        with pytest.raises(APIError) as caught:
            parse_json(b"[" * depth + b"]" * depth)
        assert caught.value.status == 400 and caught.value.code == "invalid_json"
        assert f"more than {MAX_DEPTH} levels" in caught.value.message


def test_bad_json_is_a_400() -> None:
    with pytest.raises(APIError) as caught:
        parse_json(b"{nope")
    assert caught.value.status == 400 and "not valid JSON" in caught.value.message
