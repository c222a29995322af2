"""Rerank through a real daemon and a real cross-encoder worker: `/v1/rerank`, `/rerank`,
`/v2/rerank` against the numpy forward pass of tests/factory/rerank_reference.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from mlxctl.factory.embedding import make_reranker_model
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon, register
from tests.factory.rerank_reference import relevance_scores

pytestmark = pytest.mark.slow

QUERY = "How do I read a JSON file in Python?"
DOCUMENTS = [
    "The tarfile module reads and writes tar archives.",
    "json.load reads a JSON document from a file object and returns Python objects.",
    "Paris is the capital of France.",
    # Longer than the 128-token context with the query: cut, as the reference cuts it.
    "A long manual page about reading files line by line. " * 30,
]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_reranker_model(tmp_path_factory.mktemp("rerank-model") / "r")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, reranker: Path) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("rerank")
    env = {"MLXCTL_MAX_RERANK_DOCUMENTS": "8"}
    with module_daemon(root, env) as running:
        register(root, "r", reranker)
        yield running


@pytest.fixture
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


def _rerank(http: httpx.Client, path: str = "/v1/rerank", **body: Any) -> httpx.Response:
    return http.post(path, json={"model": "r", "query": QUERY, "documents": DOCUMENTS, **body})


def test_scores_equal_the_models_own_forward_pass(http: httpx.Client, reranker: Path) -> None:
    expected = relevance_scores(reranker, QUERY, DOCUMENTS)
    answer = _rerank(http)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    results = body["results"]
    assert [r["index"] for r in results] == sorted(range(4), key=lambda i: -expected[i])
    for result in results:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
    assert body["model"] == "r" and body["object"] == "list"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 128


def test_top_n_objects_and_every_address(http: httpx.Client, reranker: Path) -> None:
    expected = relevance_scores(reranker, QUERY, DOCUMENTS[:3])
    best = max(range(3), key=lambda i: expected[i])
    objects = [{"text": text, "id": f"doc-{i}"} for i, text in enumerate(DOCUMENTS[:3])]
    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        answer = _rerank(http, path, documents=objects, top_n=1)
        assert answer.status_code == 200, (path, answer.text)
        (only,) = answer.json()["results"]
        assert only["index"] == best and only["document"] == objects[best]
    bare = _rerank(http, top_n=2, return_documents=False).json()["results"]
    assert len(bare) == 2 and all("document" not in r for r in bare)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"query": ""}, "query"),
        ({"documents": []}, "documents"),
        ({"documents": ["fine", 3]}, "documents"),
        ({"documents": ["fine", {"title": "no text"}]}, "documents"),
        ({"documents": ["x"] * 9}, "documents"),  # over MLXCTL_MAX_RERANK_DOCUMENTS=8
        ({"top_n": 0}, "top_n"),
        ({"return_documents": "yes"}, "return_documents"),
        ({"rank_fields": ["text"]}, "rank_fields"),
        ({"query": "word " * 200}, "query"),  # leaves no room in the context
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    http: httpx.Client, change: dict[str, Any], param: str
) -> None:
    answer = _rerank(http, **change)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["message"]


def test_models_that_do_not_rerank_say_so(http: httpx.Client, daemon: Daemon) -> None:
    answer = http.post("/v1/rerank", json={"model": "q", "query": QUERY, "documents": ["a"]})
    assert answer.status_code == 400 and "not a reranker" in answer.json()["error"]["message"]
    embed = http.post("/v1/embeddings", json={"model": "r", "input": "a"})
    assert embed.status_code == 400 and embed.json()["error"]["param"] == "model"
    chat = http.post(
        "/v1/chat/completions", json={"model": "r", "messages": [{"role": "user", "content": "a"}]}
    )
    assert chat.status_code == 400 and "/v1/rerank" in chat.json()["error"]["message"]
    cards = {card["id"]: card for card in http.get("/v1/models").json()["data"]}
    assert cards["r"]["capabilities"] == ["rerank"]
    assert "rerank" not in cards["q"]["capabilities"]
    with httpx.HTTPTransport() as transport:
        assert ollama.Client(host=daemon.url, transport=transport).show("r").capabilities == []


def test_the_routes_are_in_the_openapi_document(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        assert paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/RerankRequest"
        }
