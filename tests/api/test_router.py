"""The router's usage tap: tokens for the access log, read from the bytes going by."""

from __future__ import annotations

import json

from mlxctl.router import Exchange, UsageTap


def sse(data: object) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def test_usage_from_the_last_sse_events_even_split_across_chunks() -> None:
    tap = UsageTap(keep_all=False)
    body = b"".join(sse({"choices": [{"delta": {"content": "x" * 500}}]}) for _ in range(100))
    body += sse({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 100}})
    body += b"data: [DONE]\n\n"
    for i in range(0, len(body), 333):
        tap.feed(body[i : i + 333])
    assert len(tap.buffer) <= 16384
    exchange = Exchange()
    tap.finish(exchange)
    assert (exchange.prompt_tokens, exchange.completion_tokens) == (7, 100)


def test_usage_from_a_json_body_and_none_without_it() -> None:
    tap = UsageTap(keep_all=True)
    tap.feed(json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}).encode())
    exchange = Exchange()
    tap.finish(exchange)
    assert (exchange.prompt_tokens, exchange.completion_tokens) == (3, 4)
    silent = UsageTap(keep_all=False)
    silent.feed(sse({"choices": [{"delta": {"content": "hi"}}], "usage": None}))
    untouched = Exchange()
    silent.finish(untouched)
    assert untouched.prompt_tokens is None and untouched.ttft is None
