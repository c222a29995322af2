"""Errors raised before a route runs answer in the envelope of the path's dialect."""

from __future__ import annotations

import pytest

from mlxctl.api.envelope import dialect_of


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/models", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/api/chat", "ollama"),
        ("/api/tags", "ollama"),
        ("/", "ollama"),
        ("/api/admin/ps", "openai"),
        ("/metrics", "openai"),
    ],
)
def test_dialect_of(path: str, dialect: str) -> None:
    assert dialect_of(path) == dialect
