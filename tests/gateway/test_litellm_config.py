"""The LiteLLM config: its entries, its YAML, and the `mlxctl gateway litellm` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mlxctl.cli.gateway import gateway
from mlxctl.gateway.litellm import DAEMON_KEY_REF, build_config, to_yaml
from mlxctl.settings import Settings
from mlxctl.slots.table import SlotSpec, slot_table
from tests.mcp.stub_daemon import stub_daemon

ALIASES = ["jerry-xl", "jerry-l", "jerry-m", "jerry-s", "bench-xl", "bench-l", "bench-m",
           "bench-s", "utility-a", "utility-b"]  # fmt: skip


def default_slots() -> list[SlotSpec]:
    return slot_table(Settings.from_env())


def test_one_entry_per_alias_at_its_port() -> None:
    config = build_config(default_slots(), "10.0.0.5")
    first = config["model_list"][0]
    assert first["model_name"] == "jerry-xl"
    assert first["litellm_params"] == {
        "model": "openai/jerry-xl",
        "api_base": "http://10.0.0.5:8100/v1",
        "api_key": "none",
    }
    assert [e["model_name"] for e in config["model_list"]] == ALIASES


def test_on_demand_models_point_at_the_daemon_and_never_shadow_an_alias() -> None:
    config = build_config(
        default_slots()[:1], "h", ["qwen3:4b", "jerry-xl", "qwen3:4b"], "http://d:11500", keyed=True
    )
    names = [e["model_name"] for e in config["model_list"]]
    assert names == ["jerry-xl", "qwen3:4b"]
    params = config["model_list"][1]["litellm_params"]
    assert params["api_base"] == "http://d:11500/v1"
    assert params["api_key"] == DAEMON_KEY_REF
    # Slot workers require the daemon's key too when it has one.
    assert config["model_list"][0]["litellm_params"]["api_key"] == DAEMON_KEY_REF


@pytest.mark.parametrize("name", ["on", "1e3", "yes: no", "a#b", 'q"uote', "null"])
def test_the_yaml_reads_back_exactly(name: str) -> None:
    config = build_config(default_slots()[:2], "127.0.0.1", [name], "http://d:1")
    assert yaml.safe_load(to_yaml(config)) == config


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(gateway, list(args), catch_exceptions=False)
    return result


def test_the_command_follows_the_slot_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLXCTL_SLOT_BASE_PORT", "9200")
    monkeypatch.setenv("MLXCTL_SLOT_ALIASES", "big,small")
    monkeypatch.setenv("MLXCTL_SLOT_HOST", "0.0.0.0")
    entries = yaml.safe_load(invoke("litellm").output)["model_list"]
    assert [(e["model_name"], e["litellm_params"]["api_base"]) for e in entries] == [
        ("big", "http://127.0.0.1:9200/v1"),
        ("small", "http://127.0.0.1:9201/v1"),
    ]


def test_the_command_prints_and_writes_the_config(tmp_path: Path) -> None:
    printed = invoke("litellm")
    assert printed.exit_code == 0
    config = yaml.safe_load(printed.output)
    assert config["model_list"][0]["litellm_params"]["api_base"] == "http://127.0.0.1:8100/v1"
    out = tmp_path / "litellm.yaml"
    assert invoke("litellm", "-o", str(out), "--slot-host", "studio.lan").exit_code == 0
    written = yaml.safe_load(out.read_text())
    assert written["model_list"][9]["litellm_params"]["api_base"] == "http://studio.lan:8109/v1"


def test_include_on_demand_asks_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    with stub_daemon() as daemon:
        monkeypatch.setenv("MLXCTL_HOST", daemon.url)
        result = invoke("litellm", "--include-on-demand")
    assert result.exit_code == 0, result.output
    entries = yaml.safe_load(result.output)["model_list"]
    assert entries[-1]["model_name"] == "tiny"
    assert entries[-1]["litellm_params"]["api_base"] == f"{daemon.url}/v1"
    assert ("GET", "/v1/models", None) in daemon.calls


def test_sync_needs_a_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    result = CliRunner().invoke(gateway, ["litellm", "--sync", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "--master-key" in result.output
