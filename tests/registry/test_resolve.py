from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput, NotFound
from mlxctl.registry import ModelRecord
from mlxctl.registry.resolve import resolve_exact, resolve_reference

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


def test_exact_takes_a_slug_repo_id_or_model_id_only() -> None:
    assert resolve_exact("llama-3.2-1b", RECORDS).cache_path == "/c"
    assert resolve_exact("mlx-community/Qwen2.5-7B-Instruct-4bit", RECORDS).cache_path == "/b"
    tagged = [*RECORDS, ModelRecord(slug="helper:v1", cache_path="/d", model_id="helper:v1")]
    assert resolve_exact("helper:v1", tagged).cache_path == "/d"


@pytest.mark.parametrize("prefix", ["llama", "QWEN2.5-0", "mlx-community/Llama"])
def test_exact_refuses_a_prefix_and_names_the_model_it_would_have_taken(prefix: str) -> None:
    assert resolve_reference(prefix, RECORDS)  # reads still take a prefix
    with pytest.raises(NotFound) as err:
        resolve_exact(prefix, RECORDS)
    assert f"no model is named exactly '{prefix}'" == err.value.message
    assert "did you mean" in str(err.value.hint) and "exact name" in str(err.value.hint)
    assert any(r.slug in str(err.value.hint) for r in RECORDS)
