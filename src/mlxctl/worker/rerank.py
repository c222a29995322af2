"""`POST /v1/rerank` on the worker: a query and documents → relevance scores, best first.

    {"query": str, "documents": [str | {"text": str}], "top_n": int,
     "return_documents": bool (default true), "model": str}
    → {"id", "object": "list", "model", "results": [{"index", "relevance_score",
       "document": {"text"}}], "usage": {"prompt_tokens", "total_tokens"}}

The Cohere/Jina shape that llama.cpp server and LocalAI answer. Each (query, document)
pair is tokenized in a worker thread, the document cut to fit the context with the
query (as a cross-encoder is trained to read it), and scored on the engine's thread in
padded batches. `relevance_score` is sigmoid(logit), or the logit itself when the
model's config names an identity activation (docs/rerank.md).
"""

from __future__ import annotations

import functools
import math
import uuid
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlxctl.engine.encoder import Pair
from mlxctl.httpguard import json_object
from mlxctl.jsonnum import as_int
from mlxctl.worker.embeddings import model_config
from mlxctl.worker.openai_errors import APIError

__all__ = ["create", "parse_documents"]

_FIELDS = {"model", "query", "documents", "top_n", "return_documents"}


async def create(request: Request, state: Any) -> Response:
    """The handler; `state` is the app's WorkerState (typed loosely to avoid a cycle)."""
    engine = state.engine
    if getattr(engine, "kind", None) != "rerank":
        raise APIError(
            400,
            f"'{state.model.id}' is not a reranker: /v1/rerank needs a cross-encoder model.",
            param="model",
            code="model_not_supported",
        )
    body = json_object(await request.body())
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _bad("'query' must be a non-empty string.", "query")
    documents = parse_documents(
        body.get("documents"), max_documents=state.settings.max_rerank_documents
    )
    top_n = _top_n(body.get("top_n"), len(documents))
    return_documents = body.get("return_documents", True)
    if not isinstance(return_documents, bool):
        raise _bad("'return_documents' must be a boolean.", "return_documents")
    encode = functools.partial(_pairs, engine.tokenizer, query, engine.context_length)
    pairs = await anyio.to_thread.run_sync(encode, [text for text, _ in documents])
    state.requests_total += 1
    logits = await engine.rerank(pairs)
    identity = _identity(state.model.path)
    scored = [
        (i, logit if identity else 1.0 / (1.0 + math.exp(-logit))) for i, logit in enumerate(logits)
    ]
    scored.sort(key=lambda item: (-item[1], item[0]))
    results = []
    for index, score in scored[:top_n]:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if return_documents:
            result["document"] = documents[index][1]
        results.append(result)
    tokens = sum(len(pair.ids) for pair in pairs)
    return JSONResponse(
        {
            "id": f"rerank-{uuid.uuid4().hex}",
            "object": "list",
            "model": state.model.id,
            "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def parse_documents(value: object, *, max_documents: int) -> list[tuple[str, dict[str, Any]]]:
    """Each document's text and the object a result echoes; 400 on a bad list."""
    if not isinstance(value, list) or not value:
        raise _bad("'documents' must be a non-empty list of strings or objects.", "documents")
    if len(value) > max_documents:
        raise _bad(
            f"'documents' has {len(value)} items; one request takes at most {max_documents} "
            "(MLXCTL_MAX_RERANK_DOCUMENTS): split it into several requests.",
            "documents",
        )
    documents: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            text, echoed = item, {"text": item}
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            text, echoed = item["text"], dict(item)
        else:
            message = f"documents[{i}] must be a string or an object with a 'text' string."
            raise _bad(message, "documents")
        if not text.strip():
            raise _bad(f"documents[{i}] is empty.", "documents")
        documents.append((text, echoed))
    return documents


def _top_n(value: object, count: int) -> int:
    if value is None:
        return count
    number = as_int(value)
    if number is None or number < 1:
        raise _bad("'top_n' must be a positive integer.", "top_n")
    return min(number, count)


def _pairs(tokenizer: Any, query: str, limit: int, texts: list[str]) -> list[Pair]:
    pairs = []
    for text in texts:
        pair = tokenizer.encode_pair(query, text, limit)
        if pair is None:
            raise APIError(
                400,
                f"The query leaves no room for a document in this model's {limit}-token "
                "context: shorten it.",
                param="query",
                code="context_length_exceeded",
            )
        pairs.append(pair)
    return pairs


def _identity(path: Path) -> bool:
    """Whether the model's config says its logit is the score (no sigmoid)."""
    st = model_config(path).get("sentence_transformers")
    activation = st.get("activation_fn") if isinstance(st, dict) else None
    return isinstance(activation, str) and activation.endswith("Identity")


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")
