"""Factory models built once per session: making them is cheap, but not free."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlxctl.factory import make_model

Built = Callable[..., Path]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`built(arch, size, **options)`: a shared, read-only model directory."""
    made: dict[tuple[Any, ...], Path] = {}

    def get(arch: str, size: str = "tiny", **options: Any) -> Path:
        key = (arch, size, *sorted(options.items()))
        if key not in made:
            out = tmp_path_factory.mktemp(f"{arch}-{size}")
            made[key] = make_model(out, arch=arch, size=size, **options)
        return made[key]

    return get
