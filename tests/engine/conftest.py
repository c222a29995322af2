"""A tiny factory model shared by the session, and engines started on it per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlxctl.engine.generator import Engine
from mlxctl.factory import make_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("engine-tiny"), size="tiny")


@pytest.fixture
def make_engine(tiny_model: Path) -> Iterator[Callable[..., Engine]]:
    """`make_engine(**options)`: a started Engine on the tiny model, closed after the test."""
    engines: list[Engine] = []

    def make(**options: Any) -> Engine:
        engine = Engine(tiny_model, **options)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


@pytest.fixture
def prompt(engine: Engine) -> list[int]:
    """A chat-templated prompt, as the HTTP side would build it."""
    messages = [{"role": "user", "content": "Tell me about the weather."}]
    return list(engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True))
