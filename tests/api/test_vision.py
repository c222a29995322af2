"""Images through a real daemon to a real mlx-vlm worker, with the official openai client."""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from PIL import Image

from mlxctl.factory.vision import make_vision_model
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon, register

pytestmark = pytest.mark.slow

MAX_IMAGE_BYTES = 16_384


def _png(width: int, height: int, *, noise: bool = False, kind: str = "PNG") -> bytes:
    rng = random.Random(width * height)
    pixels = bytes(
        rng.randrange(256) if noise else (x * 7 + y * 3) % 256
        for y in range(height)
        for x in range(width)
        for _ in range(3)
    )
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, kind)
    return out.getvalue()


def _part(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("vision")
    with module_daemon(root, {"MLXCTL_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES)}) as running:
        register(root, "v", make_vision_model(root / "models" / "v"))
        yield running


@pytest.fixture
def client(daemon: Daemon) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{daemon.url}/v1", api_key="x", max_retries=0) as c:
        yield c


def _ask(*parts: dict[str, Any]) -> list[Any]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "What is this?"}]}]


def test_an_image_is_answered_and_streaming_agrees(client: openai.OpenAI) -> None:
    messages = _ask(_part(_png(150, 90)))
    whole = client.chat.completions.create(
        model="v", messages=messages, max_tokens=8, temperature=0
    )
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.completion_tokens >= 1
    pieces = client.chat.completions.create(
        model="v", messages=messages, max_tokens=8, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in pieces if chunk.choices)
    assert streamed == whole.choices[0].message.content
    text_only = client.chat.completions.create(
        model="v",
        messages=[{"role": "user", "content": "What is this?"}],
        max_tokens=1,
        temperature=0,
    )
    assert text_only.usage is not None
    # The image's patch tokens are prompt tokens: 150x90, scaled into the tiny model's
    # 112x112 pixels, becomes 15 of them between its start and end tokens.
    assert whole.usage.prompt_tokens == text_only.usage.prompt_tokens + 15 + 2


def test_the_next_turn_with_the_same_image_hits_the_prompt_cache(client: openai.OpenAI) -> None:
    first = _ask(_part(_png(150, 90)))
    answer = client.chat.completions.create(model="v", messages=first, max_tokens=4, temperature=0)
    said = answer.choices[0].message.content or ""
    turn = [*first, {"role": "assistant", "content": said}, {"role": "user", "content": "Colour?"}]
    again = client.chat.completions.create(model="v", messages=turn, max_tokens=4, temperature=0)
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert answer.usage is not None
    # The image and the first question come from the cache; only the new words prefill.
    cached = again.usage.prompt_tokens_details.cached_tokens or 0
    assert answer.usage.prompt_tokens - 1 <= cached < again.usage.prompt_tokens
    # Another image in the same place: nothing is reused (its tokens look alike).
    other = _ask(_part(_png(60, 40, noise=True)))
    fresh = client.chat.completions.create(model="v", messages=other, max_tokens=1, temperature=0)
    assert fresh.usage is not None and fresh.usage.prompt_tokens_details is not None
    assert not fresh.usage.prompt_tokens_details.cached_tokens


def test_structured_output_and_stop_strings_with_an_image(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "colour": {"enum": ["red", "green"]},
            "n": {"type": "integer", "minimum": 0, "maximum": 9},
        },
        "required": ["colour", "n"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="v",
        messages=_ask(_part(_png(56, 56))),
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "seen", "schema": schema, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    value = json.loads(reply.choices[0].message.content or "")
    assert value["colour"] in ("red", "green") and 0 <= value["n"] <= 9
    stopped = client.chat.completions.create(
        model="v",
        messages=_ask(_part(_png(56, 56))),
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_object"},
        stop=['"'],
    )
    assert stopped.choices[0].finish_reason == "stop"
    text = stopped.choices[0].message.content or ""
    assert text.startswith("{") and '"' not in text


def test_several_images_in_one_message(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(
        model="v", messages=_ask(_part(_png(56, 56))), max_tokens=1, temperature=0
    )
    two = client.chat.completions.create(
        model="v",
        messages=_ask(_part(_png(56, 56)), _part(_png(112, 56), "image/jpeg")),
        max_tokens=1,
        temperature=0,
    )
    assert one.usage is not None and two.usage is not None
    assert two.usage.prompt_tokens > one.usage.prompt_tokens + 4


@pytest.mark.parametrize(
    ("model", "part", "code"),
    [
        ("q", _part(_png(56, 56)), "unsupported_content"),  # a text-only model
        ("v", {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}, None),
        ("v", _part(b"not an image at all"), "unsupported_image"),
        ("v", _part(_png(56, 56, kind="TIFF"), "image/tiff"), "unsupported_image"),
        ("v", _part(_png(120, 120, noise=True)), "image_too_large"),
        ("v", {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, None),
    ],
)
def test_bad_images_are_400s_naming_the_part(
    client: openai.OpenAI, model: str, part: dict[str, Any], code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=_ask(part), max_tokens=1)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].content[0]", error
    if code is not None:
        assert error["code"] == code


def test_models_list_the_vision_capability(daemon: Daemon) -> None:
    cards = {card["id"]: card for card in daemon.client().get("/v1/models").json()["data"]}
    assert "vision" in cards["v"]["capabilities"] and "chat" in cards["v"]["capabilities"]
    assert "vision" not in cards["q"]["capabilities"]


def test_ollama_images_in_chat_and_generate(daemon: Daemon) -> None:
    picture = _png(150, 90)
    with httpx.HTTPTransport() as transport:
        ol = ollama.Client(host=daemon.url, transport=transport)
        ask = {"role": "user", "content": "What is this?", "images": [ollama.Image(value=picture)]}
        options = {"temperature": 0, "num_predict": 6}
        whole = ol.chat(model="v", messages=[ask], options=options)
        streamed = "".join(
            part.message.content or ""
            for part in ol.chat(model="v", messages=[ask], options=options, stream=True)
        )
        assert whole.message.content == streamed
        plain = ol.chat(model="v", messages=[{"role": "user", "content": "What is this?"}])
        assert whole.prompt_eval_count == (plain.prompt_eval_count or 0) + 15 + 2
        generated = ol.generate(model="v", prompt="What is this?", images=[picture])
        assert generated.prompt_eval_count == whole.prompt_eval_count
        with pytest.raises(ollama.ResponseError) as caught:
            ol.chat(model="q", messages=[ask])
        assert caught.value.status_code == 400 and "image" in caught.value.error


def test_anthropic_image_blocks(daemon: Daemon) -> None:
    block = {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(_png(150, 90)).decode(),
        },
    }
    messages: Any = [
        {"role": "user", "content": [block, {"type": "text", "text": "What is this?"}]}
    ]
    with anthropic.Anthropic(base_url=daemon.url, api_key="x", max_retries=0) as client:
        whole = client.messages.create(
            model="v", max_tokens=6, messages=messages, extra_body={"temperature": 0}
        )
        with client.messages.stream(
            model="v", max_tokens=6, messages=messages, extra_body={"temperature": 0}
        ) as stream:
            streamed = "".join(stream.text_stream)
        text = "".join(b.text for b in whole.content if b.type == "text")
        assert text == streamed and whole.usage.input_tokens > 17
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model="q", max_tokens=6, messages=messages)
        assert "image" in str(caught.value)
        url = {"type": "image", "source": {"type": "url", "url": "http://example.com/a.png"}}
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(
                model="v", max_tokens=6, messages=[{"role": "user", "content": [url]}]
            )
