"""`mlxctl bench` against a real daemon and worker (tiny qwen2 registered as `q`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlxctl.cli.bench import bench
from tests.api.conftest import Daemon

pytestmark = pytest.mark.usefixtures("daemon_host")


def test_rounds_of_concurrent_streams_are_measured(daemon: Daemon) -> None:
    args = ["q", "--runs", "2", "--concurrency", "2", "--max-tokens", "6", "--cold", "--json"]
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "q" and report["cold"] is True and report["errors"] == 0
    assert report["load_s"] > 0
    assert len(report["rounds"]) == 2
    for round_ in report["rounds"]:
        assert len(round_["ttft_ms"]) == 2 and all(t > 0 for t in round_["ttft_ms"])
        assert all(1 <= n <= 6 for n in round_["tokens"])
        assert round_["aggregate_tps"] > 0
        # the rounds' prompts differ in their first words: same length, no cache flattery
        assert round_["prompt_tokens"][0] > 20
    median = report["median"]
    assert median["decode_tps"] > 0 and median["prompt_tps"] > 0 and median["ttft_ms"] > 0
    assert daemon.ps()["q"]["state"] == "ready"  # left loaded for the next run


def test_the_table_and_a_missing_model(daemon: Daemon) -> None:
    result = CliRunner().invoke(bench, ["q", "--runs", "1", "--max-tokens", "3"])
    assert result.exit_code == 0, result.output
    assert "DECODE tok/s" in result.stdout and "median" in result.stdout
    missing = CliRunner().invoke(bench, ["nope", "--runs", "1"])
    assert missing.exit_code != 0 and "nope" in str(missing.exception)
