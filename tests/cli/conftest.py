"""Run the real `mlxctl` entry point in-process and capture what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.factory import lay_out_hf_cache, make_model


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two factory models (built once per session) to lay out in each test's HF cache."""
    root = tmp_path_factory.mktemp("factory")
    return {
        "qwen2": make_model(root / "qwen2", arch="qwen2", size="tiny"),
        "llama": make_model(root / "llama", arch="llama", size="tiny", quantize_bits=4),
    }


@pytest.fixture
def hf_cache(tiny_model_dirs: dict[str, Path], isolated_home: Path) -> Path:
    """The test's HF cache with both factory models laid out as downloads."""
    cache = isolated_home.parent / "hf-cache"
    lay_out_hf_cache(tiny_model_dirs["qwen2"], cache, "mlxctl-factory/tiny-qwen2")
    lay_out_hf_cache(tiny_model_dirs["llama"], cache, "mlxctl-factory/tiny-llama-4bit")
    return cache
