"""response_format: JSON enforced during decoding by llguidance, so output always validates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import mlx.core as mx
import numpy as np
import openai
import pytest

from mlxctl.engine.types import GenerationRequest, SamplingParams
from mlxctl.worker.openai_errors import APIError
from mlxctl.worker.structured import JsonGrammars
from tests.engine.streams import Result, collect, run
from tests.worker.conftest import engine_loader

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "temperature": {"type": "integer", "minimum": -50, "maximum": 60},
        "sky": {"enum": ["clear", "cloudy", "rain"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        "windy": {"type": "boolean"},
    },
    "required": ["city", "temperature", "sky", "tags", "windy"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
ASK = [{"role": "user", "content": "Weather report as JSON."}]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_schema_output_validates(client: openai.OpenAI, seed: int) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        max_tokens=300,
        temperature=1.0,
        seed=seed,
        response_format=FORMAT,
    )
    assert reply.choices[0].finish_reason == "stop"  # EOS came only once the JSON was complete
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), SCHEMA)


def test_streamed_json_schema_output_validates(client: openai.OpenAI) -> None:
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="m",
            messages=ASK,
            max_tokens=300,
            temperature=0,
            stream=True,
            response_format=FORMAT,
        )
    )
    jsonschema.validate(json.loads(text), SCHEMA)


def test_json_object(client: openai.OpenAI, tokenizer: Any) -> None:
    # Any object is allowed; a bias towards "}" makes the random model close it at once.
    close = tokenizer.encode("}", add_special_tokens=False)[0]
    reply = client.chat.completions.create(
        model="m",
        messages=ASK,
        max_tokens=50,
        temperature=0,
        logit_bias={str(close): 50},
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content or "") == {}


def test_completions_take_response_format(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="m",
        prompt="JSON:",
        max_tokens=300,
        temperature=0,
        extra_body={"response_format": FORMAT},
    )
    jsonschema.validate(json.loads(reply.choices[0].text), SCHEMA)


def test_invalid_schema_is_a_400(client: openai.OpenAI) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=ASK, response_format=bad)
    assert info.value.code == "invalid_schema"


def _sample(
    grammars: JsonGrammars, fmt: dict[str, Any], seed: int, vocab: int
) -> tuple[list[int], bool]:
    """Run the processor as the engine would, on random logits; (tokens, ended with EOS)."""
    processor = grammars.factory(fmt)()
    rng = np.random.default_rng(seed)
    tokens: list[int] = [1, 2, 3]  # a stand-in prompt
    for _ in range(400):
        logits = mx.array(rng.normal(size=(1, vocab)).astype(np.float32))
        masked = processor(mx.array(tokens), logits)
        token = int(mx.argmax(masked, axis=-1).item())
        if token in grammars._eos:
            return tokens[3:], True
        tokens.append(token)
    return tokens[3:], False


@pytest.mark.parametrize("seed", range(5))
def test_processor_on_random_logits(tokenizer: Any, seed: int) -> None:
    grammars = JsonGrammars(tokenizer, tokenizer.eos_token_ids)
    # A padded model vocabulary: ids past the tokenizer's must never be picked.
    generated, ended = _sample(
        grammars, {"type": "json_schema", "schema": SCHEMA}, seed, len(tokenizer) + 64
    )
    assert ended
    assert all(t < len(tokenizer) for t in generated)
    jsonschema.validate(json.loads(tokenizer.decode(generated)), SCHEMA)


def test_eos_is_masked_until_the_json_is_complete(tokenizer: Any) -> None:
    grammars = JsonGrammars(tokenizer, tokenizer.eos_token_ids)
    processor = grammars.factory({"type": "json_object"})()
    eos = sorted(tokenizer.eos_token_ids)
    prefix = tokenizer.encode('{"a": 1', add_special_tokens=False)
    context = [7]
    vocab = len(tokenizer)
    for token in [*prefix, None]:
        masked = processor(mx.array(context), mx.zeros((1, vocab)))
        assert all(masked[0, e].item() == float("-inf") for e in eos)
        if token is not None:
            context.append(token)
    # "}" completes the object: now EOS is allowed.
    context.append(tokenizer.encode("}", add_special_tokens=False)[0])
    masked = processor(mx.array(context), mx.zeros((1, vocab)))
    assert any(masked[0, e].item() == 0.0 for e in eos)


def test_bad_schema_raises_api_error(tokenizer: Any) -> None:
    grammars = JsonGrammars(tokenizer, tokenizer.eos_token_ids)
    with pytest.raises(APIError) as info:
        grammars.factory(
            {
                "type": "json_schema",
                "schema": {
                    "type": "object",
                    "properties": {"a": {"type": "string", "pattern": "(("}},
                },
            }
        )
    assert info.value.status == 400 and info.value.param == "response_format.json_schema.schema"


def test_the_pass_is_queued_before_the_newest_token_is_read(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context is queued, then the forward pass, then the newest token read and the mask
    computed: read first, the model would idle until this thread woke and queued the pass."""
    from mlxctl.worker import structured

    events: list[str] = []
    queue = structured.mx.async_eval
    fill = structured.fill_next_token_bitmask
    read = structured._last_token

    def queued(*arrays: Any) -> None:
        events.append("queue context" if arrays[0] is context else "queue pass")
        queue(*arrays)

    def filled(*args: Any) -> Any:
        events.append("mask")
        return fill(*args)

    def last(tokens: Any) -> int:
        events.append("read")
        return read(tokens)

    monkeypatch.setattr(structured.mx, "async_eval", queued)
    monkeypatch.setattr(structured, "fill_next_token_bitmask", filled)
    monkeypatch.setattr(structured, "_last_token", last)
    processor = JsonGrammars(tokenizer, tokenizer.eos_token_ids).factory({"type": "json_object"})()
    brace = tokenizer.encode("{", add_special_tokens=False)[0]
    context = mx.array([7])
    processor(context, mx.zeros((1, len(tokenizer))))
    assert events == ["queue pass", "mask"]  # the first call has no sampled token to read
    events.clear()
    # mlx-lm's context is lazy: the sampled token joins it as the pass is built.
    context = mx.concatenate([context, mx.array([brace])])[None]
    masked = processor(context, mx.zeros((1, len(tokenizer))))
    assert events == ["queue context", "queue pass", "read", "mask"]
    assert masked[0, brace].item() == float("-inf")  # "{" was consumed: a second one is not JSON


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=0.0), SamplingParams(seed=5)])
def test_constrained_output_is_the_same_alone_and_batched(
    model_path: Path, tokenizer: Any, sampling: SamplingParams
) -> None:
    """Alone (the fast path) or two at once (the batch), a grammar gives the same tokens,
    greedy or seeded (each draw keeps its place in its request's key chain), and valid JSON."""
    engine = engine_loader(model_path, max_batch=4)()
    try:
        grammars = JsonGrammars(tokenizer, tokenizer.eos_token_ids)
        make = grammars.factory({"type": "json_schema", "schema": SCHEMA})

        def request(text: str) -> GenerationRequest:
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True
            )
            return GenerationRequest(list(ids), 60, sampling, logits_processors=[make])

        async def together() -> list[Result]:
            return list(
                await asyncio.gather(*(collect(engine, request(t)) for t in ("rain", "snow")))
            )

        alone = [run(collect(engine, request(t))) for t in ("rain", "snow")]
        batched = run(together())
        assert [r.tokens for r in batched] == [r.tokens for r in alone]
        assert all(len(r.tokens) > 5 for r in alone)
        assert run(collect(engine, request("rain"))).tokens == alone[0].tokens
        finished = [r for r in alone if r.done is not None and r.done.finish_reason == "stop"]
        assert finished  # the tiny model closes at least one object within 60 tokens
        for r in finished:
            jsonschema.validate(json.loads(r.text), SCHEMA)
    finally:
        engine.close()
