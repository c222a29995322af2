"""Back-pressure and cancellation on a real worker with one slot: 429, disconnects, overflow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, engine_loader, serve


@pytest.fixture(scope="module")
def one_slot(model_path: Path) -> Iterator[Running]:
    running = serve(
        ServedModel(id="one-slot", path=model_path),
        engine_loader(model_path, max_batch=1, max_queue=0),
    )
    yield running
    running.stop()


def _long_stream_body(tokenizer: Any) -> dict[str, Any]:
    # Ban EOS so the generation runs until cancelled (the context is 4096 tokens).
    bias = {str(t): -100 for t in tokenizer.eos_token_ids}
    return {
        "messages": [{"role": "user", "content": "Go on forever."}],
        "max_tokens": 4000,
        "temperature": 0,
        "logit_bias": bias,
        "stream": True,
    }


def _wait_for(url: str, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = httpx.get(f"{url}/v1/worker/stats").json()
        if predicate(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_full_queue_is_429_and_disconnect_cancels(one_slot: Running, tokenizer: Any) -> None:
    before = httpx.get(f"{one_slot.url}/v1/worker/stats").json()
    with (
        httpx.Client(base_url=one_slot.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=_long_stream_body(tokenizer)) as first,
    ):
        assert first.status_code == 200
        lines = first.iter_lines()
        assert next(lines).startswith("data: ")  # generating now: the one slot is taken
        refused = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "me too"}], "max_tokens": 2},
        )
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "queue_full"
        busy = http.get("/v1/worker/stats").json()
        assert busy["active"] == 1 and busy["http"]["requests_active"] == 1
    # Leaving the block closed the connection mid-stream: the worker must cancel.
    after = _wait_for(
        one_slot.url,
        lambda s: s["cancelled_total"] > before["cancelled_total"] and s["active"] == 0,
    )
    assert after["cancelled_total"] == before["cancelled_total"] + 1
    assert after["active"] == 0 and after["queue_depth"] == 0
    assert after["http"]["disconnects_total"] == before["http"]["disconnects_total"] + 1
    assert after["http"]["requests_active"] == 0
    # Cancelled long before max_tokens.
    assert after["tokens_generated_total"] - before["tokens_generated_total"] < 3000
    # The slot is free again.
    with one_slot.client() as client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert reply.usage is not None and reply.usage.completion_tokens == 2


def test_openai_client_sees_rate_limit(one_slot: Running, tokenizer: Any) -> None:
    with (
        httpx.Client(base_url=one_slot.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=_long_stream_body(tokenizer)) as first,
    ):
        lines = first.iter_lines()  # keep a reference: a collected iterator closes the stream
        next(lines)
        with one_slot.client() as client, pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"]
    _wait_for(one_slot.url, lambda s: s["active"] == 0)


def test_embeddings_wait_in_the_same_admission_queue(one_slot: Running, tokenizer: Any) -> None:
    with (
        httpx.Client(base_url=one_slot.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=_long_stream_body(tokenizer)) as first,
    ):
        lines = first.iter_lines()
        next(lines)  # the one slot is generating
        refused = http.post("/v1/embeddings", json={"input": "hello"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["Retry-After"]) >= 1
    _wait_for(one_slot.url, lambda s: s["active"] == 0)
    accepted = httpx.post(f"{one_slot.url}/v1/embeddings", json={"input": "hello"}, timeout=60)
    assert accepted.status_code == 200 and len(accepted.json()["data"]) == 1
    assert httpx.get(f"{one_slot.url}/v1/worker/stats").json()["queue_depth"] == 0


def test_embedding_inputs_per_request_are_capped(one_slot: Running) -> None:
    too_many = httpx.post(f"{one_slot.url}/v1/embeddings", json={"input": ["a"] * 2049})
    assert too_many.status_code == 400
    error = too_many.json()["error"]
    assert error["param"] == "input" and "MLXCTL_MAX_EMBED_INPUTS" in error["message"]


def test_non_streamed_request_is_cancelled_when_the_client_leaves(
    one_slot: Running, tokenizer: Any
) -> None:
    before = httpx.get(f"{one_slot.url}/v1/worker/stats").json()
    body = {**_long_stream_body(tokenizer), "stream": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{one_slot.url}/v1/chat/completions", json=body, timeout=0.5)
    after = _wait_for(
        one_slot.url,
        lambda s: s["cancelled_total"] > before["cancelled_total"] and s["active"] == 0,
    )
    assert after["cancelled_total"] == before["cancelled_total"] + 1
    assert after["http"]["disconnects_total"] == before["http"]["disconnects_total"] + 1
    assert after["http"]["errors_total"] == before["http"]["errors_total"]


def test_context_overflow_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=5
        )
    assert info.value.code == "context_length_exceeded"
    assert "4096" in str(info.value.message)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="m", prompt=[5] * 4096, max_tokens=5)
    assert info.value.code == "context_length_exceeded" and info.value.param == "prompt"


def test_max_tokens_is_clamped_to_the_context(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="m",
        prompt=[5] * 4090,
        max_tokens=50,
        temperature=0,
        logit_bias={"2048": -100, "2050": -100},
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_stream_chunks_parse(one_slot: Running) -> None:
    with httpx.Client(base_url=one_slot.url, timeout=60) as http:
        response = http.post(
            "/v1/completions", json={"prompt": "a", "max_tokens": 3, "stream": True}
        )
    payloads = [line[6:] for line in response.text.split("\n\n") if line]
    assert payloads[-1] == "[DONE]"
    assert all(json.loads(p)["object"] == "text_completion" for p in payloads[:-1])


def test_empty_prompt_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="m", prompt="", max_tokens=5)
    assert "no tokens" in str(info.value.message)
