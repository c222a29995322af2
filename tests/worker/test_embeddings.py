"""`/v1/embeddings` on real workers: a BERT encoder and a chat model's pooled hidden state."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from mlxctl.engine.encoder import EncoderEngine
from mlxctl.factory.embedding import make_embedding_model
from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, serve

pytestmark = pytest.mark.slow


def _encoder_loader(path: Path) -> Callable[[], EncoderEngine]:
    def load() -> EncoderEngine:
        engine = EncoderEngine(path)
        engine.start()
        return engine

    return load


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    path = make_embedding_model(tmp_path_factory.mktemp("embed") / "tiny-bert")
    running = serve(ServedModel(id="tiny-bert", path=path), _encoder_loader(path))
    yield running
    running.stop()


@pytest.fixture
def bert(encoder: Running) -> Iterator[openai.OpenAI]:
    with encoder.client() as c:
        yield c


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_float_vectors_are_normalised_and_repeatable(bert: openai.OpenAI) -> None:
    first = bert.embeddings.create(model="tiny-bert", input="hello world", encoding_format="float")
    again = bert.embeddings.create(model="tiny-bert", input="hello world", encoding_format="float")
    vector = first.data[0].embedding
    assert len(vector) == 32 and abs(_norm(vector) - 1) < 1e-5
    assert again.data[0].embedding == vector
    assert first.model == "tiny-bert" and first.object == "list"
    assert first.usage.prompt_tokens == first.usage.total_tokens > 2  # [CLS] … [SEP]


def test_a_list_is_one_batch_equal_to_single_inputs(bert: openai.OpenAI) -> None:
    texts = ["a short one", "a much longer sentence with quite a few more words in it"]
    batch = bert.embeddings.create(model="tiny-bert", input=texts, encoding_format="float")
    singles = [
        bert.embeddings.create(model="tiny-bert", input=t, encoding_format="float") for t in texts
    ]
    assert [d.index for d in batch.data] == [0, 1]
    for item, single in zip(batch.data, singles, strict=True):
        assert np.allclose(item.embedding, single.data[0].embedding, atol=1e-5)
    assert batch.usage.total_tokens == sum(s.usage.total_tokens for s in singles)
    assert not np.allclose(batch.data[0].embedding, batch.data[1].embedding)


def test_base64_decodes_to_the_float_vector(encoder: Running, bert: openai.OpenAI) -> None:
    floats = bert.embeddings.create(model="tiny-bert", input="x y z", encoding_format="float")
    # The official client asks for base64 by default and decodes it itself.
    decoded = bert.embeddings.create(model="tiny-bert", input="x y z")
    assert np.allclose(decoded.data[0].embedding, floats.data[0].embedding, atol=1e-6)
    raw = httpx.post(
        f"{encoder.url}/v1/embeddings",
        json={"model": "tiny-bert", "input": "x y z", "encoding_format": "base64"},
    ).json()

    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vector, floats.data[0].embedding, atol=1e-6)


def test_dimensions_truncate_and_renormalise(bert: openai.OpenAI) -> None:
    full = bert.embeddings.create(model="tiny-bert", input="cut me", encoding_format="float")
    short = bert.embeddings.create(
        model="tiny-bert", input="cut me", dimensions=16, encoding_format="float"
    )
    vector = short.data[0].embedding
    head = np.asarray(full.data[0].embedding[:16])
    assert len(vector) == 16 and abs(_norm(vector) - 1) < 1e-5
    assert np.allclose(vector, head / np.linalg.norm(head), atol=1e-5)
    with pytest.raises(openai.BadRequestError) as e:
        bert.embeddings.create(model="tiny-bert", input="x", dimensions=33)
    assert e.value.body["param"] == "dimensions"  # type: ignore[index]


def test_token_id_inputs_and_bad_inputs(encoder: Running, bert: openai.OpenAI) -> None:
    ids = bert.embeddings.create(model="tiny-bert", input=[[2, 50, 3], [2, 3]])
    assert len(ids.data) == 2 and ids.usage.prompt_tokens == 5
    bads: list[dict[str, object]] = [
        {"input": ""},
        {"input": []},
        {"input": [[999999]]},
        {"input": "x", "foo": 1},
    ]
    for bad in bads:
        response = httpx.post(f"{encoder.url}/v1/embeddings", json={"model": "m", **bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] in ("input", "foo")


def test_integral_floats_are_token_ids_and_sizes(encoder: Running) -> None:
    # JSON has one number type: 2.0 is an integer (the fuzz run sent these; both were 400s).
    body = {"model": "m", "input": [[2.0, 50.0, 3.0]], "dimensions": 16.0}
    response = httpx.post(f"{encoder.url}/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"][0]["embedding"]) == 16


def test_an_encoder_refuses_chat(bert: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        bert.chat.completions.create(
            model="tiny-bert", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.code == "model_not_supported"


def test_too_long_inputs_400_unless_truncated(encoder: Running) -> None:
    text = "word " * 400  # over the tiny encoder's 128 positions
    url = f"{encoder.url}/v1/embeddings"
    refused = httpx.post(url, json={"input": [list(range(5, 200))]})
    assert refused.json()["error"]["code"] == "context_length_exceeded"
    cut = httpx.post(url, json={"input": [list(range(5, 200))], "truncate": True})
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == 128
    assert httpx.post(url, json={"input": text}).status_code == 400
    assert httpx.post(url, json={"input": text, "truncate": True}).status_code == 200


def test_a_chat_model_embeds_its_pooled_hidden_state(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="tiny-qwen2", input="hello", encoding_format="float")
    both = client.embeddings.create(
        model="tiny-qwen2", input=["hello", "other words"], encoding_format="float"
    )
    vector = one.data[0].embedding
    assert len(vector) == 64 and abs(_norm(vector) - 1) < 1e-4
    assert np.allclose(both.data[0].embedding, vector, atol=1e-5)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="tiny-qwen2", input="x", dimensions=8)
    # Generation still works around it: the embed ran on the generation thread.
    reply = client.completions.create(model="tiny-qwen2", prompt="hi", max_tokens=2)
    assert reply.usage is not None and reply.usage.completion_tokens >= 1
