"""The CLI's client and the daemon commands, against a real daemon with fake workers."""

from __future__ import annotations

import json
from collections.abc import Callable

import click
import httpx
import pytest
from click.testing import CliRunner

from mlxctl.cli import daemon as commands
from mlxctl.client import DaemonClient
from mlxctl.client.daemon import error_from
from mlxctl.errors import Conflict, InvalidInput, NotFound, Unavailable
from mlxctl.registry import ModelRecord
from mlxctl.settings import describe
from mlxctl.supervision.process import free_port
from tests.api.conftest import Daemon, StartDaemon, fake_worker_command

Register = Callable[..., ModelRecord]


@click.group()
def group() -> None:
    """The daemon commands, as cli/main.py registers them."""


for command in (
    commands.serve,
    commands.ps,
    commands.load,
    commands.unload,
    commands.stop,
    commands.status,
):
    group.add_command(command)


@pytest.fixture
def daemon(
    start_daemon: StartDaemon, register: Register, monkeypatch: pytest.MonkeyPatch
) -> Daemon:
    register("a", size_bytes=2_000_000)
    running = start_daemon({"MLXCTL_WORKER_COMMAND": fake_worker_command("--rss-mb", "16")})
    monkeypatch.setenv("MLXCTL_HOST", f"127.0.0.1:{running.port}")
    return running


def run(*args: str) -> str:
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_no_daemon_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("MLXCTL_HOST", f"127.0.0.1:{port}")
    with DaemonClient.from_settings() as client, pytest.raises(Unavailable) as info:
        client.ps()
    assert str(info.value) == (
        f"no mlxctl daemon at http://127.0.0.1:{port}: start one with `mlxctl serve`"
    )


def test_error_answers_become_mlxctl_errors() -> None:
    def answer(status: int, headers: dict[str, str] | None = None) -> Exception:
        body = {"error": {"message": f"status {status}", "type": "x", "param": None, "code": None}}
        return error_from(httpx.Response(status, json=body, headers=headers))

    assert isinstance(answer(404), NotFound) and str(answer(404)) == "status 404"
    assert isinstance(answer(400), InvalidInput)
    assert isinstance(answer(409), Conflict)
    assert "MLXCTL_API_KEY" in str(answer(401))
    busy = answer(429, {"Retry-After": "3"})
    assert isinstance(busy, Unavailable) and busy.hint == "retry in 3 s"
    assert str(error_from(httpx.Response(502, text="<html>"))) == "the daemon answered 502"


def test_client_calls(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    with DaemonClient.from_settings() as client:
        assert client.health()["status"] == "ok"
        assert client.ps() == []
        row = client.load("a", keep_alive="1h")
        assert row["model"] == "a" and row["keep_alive"] == 3600
        assert [m["model"] for m in client.ps()] == ["a"]
        assert client.status()["loaded_models"] == 1
        assert client.unload("a") == {"model": "a", "unloaded": True}
        with pytest.raises(NotFound, match="model 'zzz' is not registered"):
            client.load("zzz")


def test_cli_commands(daemon: Daemon) -> None:
    assert "No models loaded." in run("ps")
    loaded = run("load", "a", "--keep-alive", "-1")
    assert loaded.startswith("Loaded a (pid ") and "until evicted" in loaded
    table = run("ps")
    assert "NAME" in table and "ready" in table and "forever" in table
    assert json.loads(run("ps", "--json"))[0]["model"] == "a"
    status = run("status")
    for field in ("budget", "used", "free", "measured", "1 of 3 loaded"):
        assert field in status
    assert json.loads(run("status", "--json"))["loaded_models"] == 1
    assert run("stop", "a").strip() == "Unloaded a"
    assert run("unload", "a").strip() == "a was not loaded"


def test_serve_help_lists_every_setting() -> None:
    text = run("serve", "--help")
    missing = [env for _, env, _, _ in describe() if env not in text]
    assert missing == []
    assert "MLXCTL_MEMORY_BUDGET  [default: 75%]" in text


def test_a_key_over_plain_http_to_another_host_warns_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for url in ("http://127.0.0.1:11500", "http://localhost:1", "https://llm.example.com"):
        DaemonClient(url, api_key="k").close()
    DaemonClient("http://192.0.2.7:11500").close()  # no key: nothing to leak
    assert capsys.readouterr().err == ""
    DaemonClient("http://192.0.2.7:11500", api_key="k").close()
    DaemonClient("http://192.0.2.7:11500", api_key="k").close()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "MLXCTL_API_KEY to http://192.0.2.7:11500 over plain http" in err
    assert "https" in err
