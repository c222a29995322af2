"""The LiteLLM config: its entries, its YAML, and the `mlxctl gateway litellm` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mlxctl.cli.gateway import gateway
from mlxctl.gateway.hosts import Host, Survey
from mlxctl.gateway.litellm import (
    DAEMON_KEY_REF,
    ROUTER_SETTINGS,
    build_config,
    host_entries,
    to_yaml,
)
from mlxctl.settings import Settings
from mlxctl.slots.table import SlotSpec, slot_table
from tests.cli.runner import Run
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


def three_hosts() -> list[Survey]:
    return [
        Survey(Host("a", "http://a:1", "ka"), ("q", "r"), ("q", "r", "s")),
        Survey(Host("b", "http://b:2", "kb"), ("q",), ("q",)),
        Survey(Host("c", "http://c:3"), (), ("q", "t")),
    ]


def routes(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, int | None]]:
    return [
        (
            e["model_name"],
            e["litellm_params"]["api_base"],
            e["litellm_params"]["api_key"],
            e["litellm_params"].get("order"),
        )
        for e in entries
    ]


def test_every_host_that_loaded_a_model_is_one_deployment_of_its_name() -> None:
    entries = host_entries(three_hosts(), "a")
    assert routes(entries) == [
        ("q", "http://a:1/v1", DAEMON_KEY_REF, 1),  # this daemon's key, by reference
        ("r", "http://a:1/v1", DAEMON_KEY_REF, 1),
        ("q", "http://b:2/v1", "kb", 1),  # a peer's key as config.yaml gives it
        ("q@a", "http://a:1/v1", DAEMON_KEY_REF, None),
        ("r@a", "http://a:1/v1", DAEMON_KEY_REF, None),
        ("q@b", "http://b:2/v1", "kb", None),
    ]
    assert {e["model_info"]["mlxctl_host"] for e in entries} == {"a", "b"}
    assert all(e["litellm_params"]["model"] == "openai/" + e["model_name"].split("@")[0]
               for e in entries)  # fmt: skip


def test_on_demand_hosts_come_after_those_with_the_model_loaded() -> None:
    entries = host_entries(three_hosts(), "a", include_on_demand=True)
    shared = [r for r in routes(entries) if "@" not in r[0]]
    assert shared == [
        ("q", "http://a:1/v1", DAEMON_KEY_REF, 1),
        ("r", "http://a:1/v1", DAEMON_KEY_REF, 1),
        ("s", "http://a:1/v1", DAEMON_KEY_REF, 2),
        ("q", "http://b:2/v1", "kb", 1),
        ("q", "http://c:3/v1", "none", 2),
        ("t", "http://c:3/v1", "none", 2),
    ]


def test_a_slot_alias_keeps_its_name_and_the_hosts_keep_model_at_host() -> None:
    entries = host_entries(three_hosts(), "a", taken=["q"])
    assert [e["model_name"] for e in entries] == ["r", "q@a", "r@a", "q@b"]


def test_the_multi_host_config_reads_back_with_its_router_settings() -> None:
    config = build_config(default_slots()[:1], "h", hosts=host_entries(three_hosts(), "a"))
    read = yaml.safe_load(to_yaml(config))
    assert read == config
    assert read["router_settings"] == ROUTER_SETTINGS
    assert read["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert "router_settings" not in build_config(default_slots()[:1], "h")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--peer", "studio"], "--peer 'studio' is not NAME=VALUE"),
        (["--peer", "studio=ftp://x"], "is not an http(s) URL with a host"),
        (["--peer", "bad name=http://x:1"], "peer name 'bad name'"),
        (["--peer", "b=http://x:1", "--peer-key", "zz=k"], "there is no peer named 'zz'"),
    ],
)
def test_bad_peers_are_one_line_and_change_nothing(
    run: Run, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "litellm.yaml"
    result = run("gateway", "litellm", "-o", str(out), *args)
    assert result.code == 2, result
    assert message in result.err
    assert "Traceback" not in result.err and not out.exists()


def test_an_unreachable_host_names_itself_and_how_to_fix_it(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "litellm.yaml"
    result = run(
        "gateway", "litellm", "--no-local", "--peer", "b=http://127.0.0.1:9", "-o", str(out)
    )
    assert result.code == 5
    assert "host 'b' (http://127.0.0.1:9): no mlxctl daemon" in result.err
    assert "start its daemon, or fix its URL" in result.err
    assert not out.exists()


def test_config_yaml_peers_make_it_multi_host(run: Run, isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.yaml").write_text("peers:\n  studio:\n    url: http://127.0.0.1:9\n")
    result = run("gateway", "litellm", "--no-local")
    assert result.code == 5 and "host 'studio'" in result.err


def test_watch_needs_somewhere_to_write(run: Run) -> None:
    result = run("gateway", "litellm", "--watch")
    assert result.code == 2 and "--watch needs --sync URL or -o FILE" in result.err


def test_the_command_spans_this_daemon_and_its_peers(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stub_daemon() as a, stub_daemon() as b:
        monkeypatch.setenv("MLXCTL_HOST", a.url)
        result = run("gateway", "litellm", "--name", "a", "--peer", f"b={b.url}",
                     "--peer-key", "b=sk-b")  # fmt: skip
    assert result.code == 0, result
    config = yaml.safe_load(result.out)
    entries = {(e["model_name"], e["litellm_params"]["api_base"], e["litellm_params"]["api_key"])
               for e in config["model_list"] if "mlxctl_host" in e["model_info"]}  # fmt: skip
    assert entries == {
        ("tiny", f"{a.url}/v1", "none"),
        ("tiny", f"{b.url}/v1", "sk-b"),
        ("tiny@a", f"{a.url}/v1", "none"),
        ("tiny@b", f"{b.url}/v1", "sk-b"),
    }
    assert config["router_settings"] == ROUTER_SETTINGS
    assert b.keys == {"Bearer sk-b"} and a.keys == {None}


def test_watch_rewrites_the_file_only_when_it_changes(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "litellm.yaml"
    with stub_daemon() as a, stub_daemon() as b:
        monkeypatch.setenv("MLXCTL_HOST", a.url)
        args = ["--peer", f"b={b.url}", "--watch", "-o", str(out), "--interval", "0.1"]
        result = run("gateway", "litellm", *args, "--rounds", "3")
    assert result.code == 0, result
    assert result.out.count(f"wrote {out}") == 1
    assert ("GET", "/api/admin/ps", None) in b.calls
    assert len([c for c in b.calls if c[1] == "/api/admin/ps"]) == 3
    names = [e["model_name"] for e in yaml.safe_load(out.read_text())["model_list"]]
    assert "tiny@b" in names
