"""Chat and text completions through the official OpenAI client, on a real worker."""

from __future__ import annotations

import json
import math
import uuid

import httpx
import openai

from tests.worker.conftest import Running, sse_lines


def _messages(text: str = "Tell me about the weather.") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_completion_shape_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny-qwen2", messages=_messages(), max_tokens=8, temperature=0
    )
    assert reply.object == "chat.completion"
    assert reply.model == "tiny-qwen2"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("length", "stop")
    usage = reply.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens is not None


def test_streamed_chat_matches_plain_and_frames_like_openai(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    plain = client.chat.completions.create(
        model="m", messages=_messages(), max_tokens=10, temperature=0
    )
    body = {
        "messages": _messages(),
        "max_tokens": 10,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = sse_lines(response)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 10
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "length" and finish["delta"] == {}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == plain.choices[0].message.content
    assert all(c["usage"] is None for c in chunks[:-1])


def test_openai_client_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m",
        messages=_messages(),
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert chunks[-2].choices[0].finish_reason == "length"


def test_completions_text_and_token_prompt(client: openai.OpenAI, tokenizer: object) -> None:
    reply = client.completions.create(
        model="m", prompt="Once upon a time", max_tokens=7, temperature=0
    )
    assert reply.object == "text_completion"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    ids = tokenizer.encode("Once upon a time")
    again = client.completions.create(model="m", prompt=ids, max_tokens=7, temperature=0)
    assert again.choices[0].text == reply.choices[0].text


def test_streamed_completions(client: openai.OpenAI) -> None:
    plain = client.completions.create(model="m", prompt="The sea", max_tokens=9, temperature=0)
    chunks = list(
        client.completions.create(
            model="m", prompt="The sea", max_tokens=9, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_repeated_prompt_reports_cached_tokens(client: openai.OpenAI) -> None:
    messages = _messages(f"A fresh question {uuid.uuid4().hex}")
    first = client.chat.completions.create(model="m", messages=messages, max_tokens=2)
    second = client.chat.completions.create(model="m", messages=messages, max_tokens=2)
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens
    assert second.usage.prompt_tokens_details.cached_tokens > (
        first.usage.prompt_tokens_details.cached_tokens or 0
    )


def test_same_seed_same_text(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model="m",
            messages=_messages(),
            max_tokens=12,
            temperature=1.0,
            seed=seed,
        )
        return reply.choices[0].message.content or ""

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_chat_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=_messages(),
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == 5
    for entry in logprobs.content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.bytes == list(entry.token.encode())
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(entry.logprob, entry.top_logprobs[0].logprob, abs_tol=1e-4)
    assert "".join(e.token for e in logprobs.content) == reply.choices[0].message.content


def test_streamed_logprobs_cover_every_token(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=_messages(),
            max_tokens=6,
            temperature=0,
            logprobs=True,
            stream=True,
        )
    )
    entries = [
        e
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content or []
    ]
    assert len(entries) == 6


def test_completions_logprobs(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="m", prompt="Hi", max_tokens=4, temperature=0, logprobs=2
    )
    lp = reply.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and len(lp.tokens) == 4
    assert lp.top_logprobs is not None and all(len(t) <= 2 for t in lp.top_logprobs)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(4)]


def test_logit_bias_forces_a_token(client: openai.OpenAI, tokenizer: object) -> None:
    (token,) = tokenizer.encode("hello", add_special_tokens=False)[:1]
    reply = client.chat.completions.create(
        model="m",
        messages=_messages(),
        max_tokens=3,
        temperature=0,
        logit_bias={str(token): 100},
    )
    text = tokenizer.decode([token])
    assert reply.choices[0].message.content == text * 3


def test_models_health_and_stats(worker: Running, http: httpx.Client) -> None:
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    (card,) = models["data"]
    assert card["id"] == "tiny-qwen2" and card["context_length"] == 4096
    health = http.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"] == {
        "id": "tiny-qwen2",
        "path": str(worker.state.model.path),
        "repo_id": "mlxctl-factory/tiny-qwen2",
    }
    assert isinstance(health["pid"], int)
    stats = http.get("/v1/worker/stats").json()
    for key in ("queue_depth", "active", "requests_total", "prompt_cache", "memory"):
        assert key in stats
    assert stats["uptime_s"] > 0 and stats["tokens_served"] >= 0
    assert stats["http"]["requests_active"] == 0
