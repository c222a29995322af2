"""Embeddings through a real daemon: OpenAI `/v1/embeddings`, Ollama `/api/embed(dings)`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import numpy as np
import ollama
import openai
import pytest

from mlxctl.factory.embedding import make_embedding_model
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon, register

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("embed")
    with module_daemon(root) as running:
        register(root, "e", make_embedding_model(root / "models" / "bert"))
        yield running


@pytest.fixture
def client(daemon: Daemon) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{daemon.url}/v1", api_key="x", max_retries=0) as c:
        yield c


def test_openai_embeddings_through_the_daemon(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="e", input=["one", "two words"], encoding_format="float"
    )
    decoded = client.embeddings.create(model="e", input=["one", "two words"])  # base64 on the wire
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 32
    for a, b in zip(floats.data, decoded.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 4
    short = client.embeddings.create(model="e", input="one", dimensions=16, encoding_format="float")
    assert len(short.data[0].embedding) == 16
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(
            model="q", input="one", dimensions=8
        )  # a chat model: no Matryoshka
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="e", messages=[{"role": "user", "content": "hi"}])


def test_models_list_the_embedding_capability(client: openai.OpenAI, daemon: Daemon) -> None:
    cards = {card["id"]: card for card in daemon.client().get("/v1/models").json()["data"]}
    assert cards["e"]["capabilities"] == ["embeddings"]
    assert "embeddings" not in cards["q"]["capabilities"]
    with httpx.HTTPTransport() as transport:
        shown = ollama.Client(host=daemon.url, transport=transport).show("e")
    assert shown.capabilities == ["embedding"]


@pytest.fixture
def ol(daemon: Daemon) -> Iterator[ollama.Client]:
    with httpx.HTTPTransport() as transport:
        yield ollama.Client(host=daemon.url, transport=transport)


def test_ollama_embed_and_embeddings(ol: ollama.Client) -> None:
    batch = ol.embed(model="e", input=["one", "two words"])
    assert batch.model == "e" and len(batch.embeddings) == 2
    assert batch.prompt_eval_count and batch.prompt_eval_count > 4
    assert batch.total_duration and batch.total_duration > 0 and batch.load_duration is not None
    single = ol.embed(model="e", input="one")
    assert np.allclose(single.embeddings[0], batch.embeddings[0], atol=1e-5)
    old = ol.embeddings(model="e", prompt="one")
    assert np.allclose(old.embedding, single.embeddings[0], atol=1e-5)
    assert abs(math.fsum(x * x for x in old.embedding) - 1) < 1e-4
    # A chat model embeds through its pooled hidden state.
    assert len(ol.embed(model="q", input="one").embeddings[0]) == 64


def test_ollama_truncates_unless_told_not_to(ol: ollama.Client) -> None:
    long = "word " * 400  # over the tiny encoder's 128 positions
    assert len(ol.embed(model="e", input=long).embeddings[0]) == 32
    with pytest.raises(ollama.ResponseError) as e:
        ol.embed(model="e", input=long, truncate=False)
    assert e.value.status_code == 400 and "context length" in e.value.error
