from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput, NotFound
from mlxctl.registry import ModelRecord
from mlxctl.registry.resolve import resolve_reference

RECORDS = [
    ModelRecord(
        slug="qwen2.5-0.5b-instruct",
        cache_path="/a",
        repo_id="mlx-community/Qwen2.5-0.5B-Instruct-4bit",
    ),
    ModelRecord(
        slug="qwen2.5-7b-instruct",
        cache_path="/b",
        repo_id="mlx-community/Qwen2.5-7B-Instruct-4bit",
    ),
    ModelRecord(
        slug="llama-3.2-1b", cache_path="/c", repo_id="mlx-community/Llama-3.2-1B-Instruct"
    ),
]


def test_by_slug_repo_id_and_prefix() -> None:
    assert resolve_reference("llama-3.2-1b", RECORDS).cache_path == "/c"
    assert resolve_reference("mlx-community/Qwen2.5-7B-Instruct-4bit", RECORDS).cache_path == "/b"
    assert resolve_reference("llama", RECORDS).cache_path == "/c"
    assert resolve_reference("QWEN2.5-0", RECORDS).cache_path == "/a"


def test_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(InvalidInput, match=r"qwen2\.5-0\.5b-instruct, qwen2\.5-7b-instruct"):
        resolve_reference("qwen", RECORDS)


def test_unknown_names_the_closest() -> None:
    with pytest.raises(NotFound) as err:
        resolve_reference("lama-3.2-1b", RECORDS)
    assert "llama-3.2-1b" in str(err.value.hint)


def test_empty_registry_points_at_init() -> None:
    with pytest.raises(NotFound) as err:
        resolve_reference("anything", [])
    assert "mlxctl init" in str(err.value.hint)
