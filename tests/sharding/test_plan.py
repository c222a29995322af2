"""The memory planner: each host's share from the safetensors headers, checked per host."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.factory import make_model
from mlxctl.sharding.plan import LayerBytes, layer_bytes, pipeline_split, plan
from mlxctl.sharding.spec import ShardSettings
from mlxctl.store.local.modelinfo import inspect_model_dir

TWO_MACS = ShardSettings.model_validate(
    {
        "hosts": [
            {"host": "127.0.0.1", "ip": "10.0.0.1"},
            {"host": "mini", "ip": "10.0.0.2", "memory": "1000"},
        ]
    }
)


def test_layer_bytes_read_from_the_headers_add_up_to_the_weights(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", arch="llama", size="tiny")
    weights = layer_bytes(folder)
    config_layers = 2  # the tiny factory llama
    assert len(weights.layers) == config_layers and all(weights.layers)
    assert weights.shared > 0
    files = inspect_model_dir(folder).size_bytes  # the data plus each file's JSON header
    assert files is not None and files - 8192 < weights.total < files


def test_pipeline_split_is_mlx_lms_rank_zero_gets_the_last_layers() -> None:
    assert pipeline_split(5, 2) == [(2, 5), (0, 2)]
    assert pipeline_split(4, 4) == [(3, 4), (2, 3), (1, 2), (0, 1)]


def test_tensor_splits_layers_and_kv_shared_tensors_count_on_every_rank() -> None:
    weights = LayerBytes(shared=100, layers=(400, 400))
    shares = plan(TWO_MACS, weights, kv_total=200, local_budget=10_000).hosts
    assert [(s.host, s.weights, s.kv) for s in shares] == [
        ("127.0.0.1", 500, 100),
        ("mini", 500, 100),
    ]
    assert shares[0].local and not shares[1].local


def test_pipeline_and_ranks_as_shares() -> None:
    three = ShardSettings.model_validate(
        {"hosts": [{"host": "127.0.0.1", "ranks": 2}, "127.0.0.1"], "mode": "pipeline"}
    )
    weights = LayerBytes(shared=10, layers=(1, 2, 4))
    (local,) = plan(three, weights, kv_total=30, local_budget=100).hosts
    assert (local.ranks, local.weights, local.kv) == (3, 37, 30)


def test_a_host_over_its_budget_is_refused_with_its_figures() -> None:
    weights = LayerBytes(shared=100, layers=(400, 400))
    result = plan(TWO_MACS, weights, kv_total=1002, local_budget=10_000)
    assert result.local_bytes == 1001
    refusal = result.refusal("big")
    assert refusal is not None and refusal.status == 400
    assert refusal.message == (
        "model 'big' does not fit host 'mini': its 1 rank(s) hold 1.0 KB (weights 500 B + "
        "KV 501 B), its budget is 1.0 KB"
    )


@pytest.mark.parametrize("budget", [999, 1000])
def test_the_budget_edge(budget: int) -> None:
    spec = ShardSettings.model_validate(
        {"hosts": [{"host": "127.0.0.1", "ranks": 2, "memory": str(budget)}]}
    )
    result = plan(spec, LayerBytes(shared=0, layers=(500, 500)), 0, 10)
    assert (result.refusal("m") is None) == (budget >= 1000)
