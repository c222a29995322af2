"""What the sharded path cannot do is refused by name, never silently dropped."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mlxctl.model_options import ModelOptions
from mlxctl.sharding.limits import ShardedUnsupported, check_options, check_request
from mlxctl.sharding.spec import ShardSettings

PAIR = ShardSettings.model_validate({"hosts": [{"host": "127.0.0.1", "ranks": 2}]})


def test_options_it_cannot_honour_are_named() -> None:
    options = replace(ModelOptions(), shard=PAIR, draft_model="small", chat_template="t.jinja")
    with pytest.raises(ShardedUnsupported) as refused:
        check_options("big", options)
    assert refused.value.status == 400
    assert "speculative decoding (draft_model)" in refused.value.message
    assert "a chat template file (chat_template)" in refused.value.message
    check_options("big", replace(ModelOptions(), shard=PAIR, kv_bits=4))  # passed on
    check_options("big", replace(ModelOptions(), draft_model="small"))  # not sharded


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ({"response_format": {"type": "json_object"}}, "structured output"),
        ({"suffix": "}"}, "fill-in-the-middle (suffix)"),
        ({"draft_model": "small"}, "speculative decoding"),
    ],
)
def test_requests_it_would_ignore_are_refused(field: dict[str, object], words: str) -> None:
    with pytest.raises(ShardedUnsupported) as refused:
        check_request("big", json.dumps({"model": "big", **field}).encode())
    assert words in refused.value.message


def test_plain_requests_pass() -> None:
    check_request("big", b'{"model": "big", "response_format": {"type": "text"}}')
    check_request("big", b"not json")
