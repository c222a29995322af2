"""The rerank routes (`api/openai/routes.py`) in the OpenAPI document, OpenAI-tagged:
they answer in its envelope."""

from __future__ import annotations

from mlxctl.api.openapi.build import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    OPENAI,
    STRING,
    TEXT,
    Paths,
    Schema,
    array,
    obj,
    ref,
    worker_operation,
)
from mlxctl.api.openapi.openai import KEEP_ALIVE

_DOCUMENT = obj({"text": STRING}, "text", extra=True)

SCHEMAS: dict[str, Schema] = {
    "RerankRequest": obj(
        {
            "model": TEXT,
            "query": TEXT,
            "documents": array({"anyOf": [STRING, _DOCUMENT]}, minItems=1),
            "top_n": {"type": "integer", "minimum": 1},
            "return_documents": BOOLEAN,
            "keep_alive": KEEP_ALIVE,
        },
        "model",
        "query",
        "documents",
    ),
    "RerankResult": obj(
        {
            "id": STRING,
            "object": {"const": "list"},
            "model": STRING,
            "results": array(
                obj(
                    {"index": INTEGER, "relevance_score": NUMBER, "document": _DOCUMENT},
                    "index",
                    "relevance_score",
                )
            ),
            "usage": obj({"prompt_tokens": INTEGER, "total_tokens": INTEGER}),
        },
        "model",
        "results",
        "usage",
    ),
}

PATHS: Paths = {
    path: {
        "post": worker_operation(
            OPENAI,
            "Rerank documents by relevance to a query (Cohere/Jina shape)",
            "RerankRequest",
            {"application/json": ref("RerankResult")},
        )
    }
    for path in ("/v1/rerank", "/rerank", "/v2/rerank")
}
