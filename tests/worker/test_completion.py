"""OpenAI shapes from a real worker: what `worker/completion.py` renders stays strict JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.worker.conftest import sse_lines

pytestmark = pytest.mark.slow

# A penalty this small sends logits to infinity: the logprobs come out -inf or NaN.
EXTREME = {"repetition_penalty": 5e-324, "max_tokens": 2, "temperature": 0}


def strict(text: str) -> Any:
    """JSON as the spec has it: no NaN, Infinity or -Infinity."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_logprobs_are_reported_as_very_unlikely(http: httpx.Client) -> None:
    # Found by the fuzz run (tests/api/openapi): this was a 500, and -Infinity when streamed.
    completion = http.post("/v1/completions", json={"prompt": "0", "logprobs": 1, **EXTREME})
    assert completion.status_code == 200, completion.text
    logprobs = strict(completion.text)["choices"][0]["logprobs"]
    assert -9999.0 in logprobs["token_logprobs"]
    with http.stream(
        "POST", "/v1/completions", json={"prompt": "0", "logprobs": 1, "stream": True, **EXTREME}
    ) as streamed:
        chunks = [strict(data) for data in sse_lines(streamed)[:-1]]
    assert any(c["choices"][0]["logprobs"] for c in chunks if c["choices"])
    messages = [{"role": "user", "content": "0"}]
    chat = http.post(
        "/v1/chat/completions",
        json={"messages": messages, "logprobs": True, "top_logprobs": 2, **EXTREME},
    )
    assert chat.status_code == 200, chat.text
    content = strict(chat.text)["choices"][0]["logprobs"]["content"]
    assert all(entry["logprob"] <= 0 for entry in content)
