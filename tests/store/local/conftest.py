"""Fixtures for the Hugging Face cache tests; the builders live in store_helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.store.store_helpers import folder_files, write_model


@pytest.fixture
def model_files(tmp_path: Path) -> Callable[..., dict[str, bytes]]:
    """The files of a freshly written tiny model, as bytes to lay out in a cache."""
    counter = iter(range(1_000))

    def make(**kwargs: Any) -> dict[str, bytes]:
        return folder_files(write_model(tmp_path / f"src-{next(counter)}", **kwargs))

    return make


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    return cache
