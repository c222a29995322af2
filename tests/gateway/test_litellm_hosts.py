"""A real LiteLLM proxy in front of two real daemons serving the same factory model.

One module: two `mlxctl serve` (`a` and `b`, each with the tiny qwen2 as `q`, loaded),
the config written by `mlxctl gateway litellm --name a --peer b=…`, one LiteLLM proxy
on it. Traffic is counted with each daemon's /metrics; the last test kills `b` (the
daemon and its worker, kill -9) and every request must still succeed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from mlxctl.cli.gateway import gateway
from mlxctl.gateway.hosts import Host
from mlxctl.gateway.watch import FileSink, Gateway, ProxySink, Watcher
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon, register
from tests.gateway.conftest import MASTER_KEY, free_port, stop, wait_http
from tests.gateway.test_litellm_admin import StubProxy

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("litellm_starting")]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    """Daemons `a` and `b`, `q` loaded on both; `b` also has `w` (the same weights) registered."""
    roots = {name: tmp_path_factory.mktemp(f"host-{name}") for name in "ab"}
    with module_daemon(roots["a"]) as a, module_daemon(roots["b"]) as b:
        register(roots["b"], "w", roots["b"] / "models" / "qwen2")
        for daemon in (a, b):
            loaded = daemon.client().post("/api/admin/load", json={"model": "q"}, timeout=120)
            assert loaded.status_code == 200, loaded.text
        yield {"a": a, "b": b}
        for daemon in (a, b):
            kill_host(daemon)


def kill_host(daemon: Daemon) -> None:
    """kill -9 the daemon and its workers (its own process group): the host is gone."""
    try:
        os.killpg(daemon.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    daemon.proc.wait(10)


def write_config(hosts: dict[str, Daemon], path: Path, *extra: str) -> dict[str, Any]:
    env = {"MLXCTL_HOST": hosts["a"].url}
    args = ["litellm", "--name", "a", "--peer", f"b={hosts['b'].url}", "-o", str(path), *extra]
    result = CliRunner().invoke(gateway, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@dataclass
class Proxy:
    url: str
    log: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=MASTER_KEY, max_retries=0)

    def ask(self, model: str, **kwargs: Any) -> str:
        """One chat through the proxy; a failure shows the proxy's own log."""
        try:
            answer = self.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2, **kwargs
            )
        except openai.APIError as e:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{e}\n--- litellm.log ---\n{tail}") from None
        if kwargs.get("stream"):
            chunks = list(answer)
            assert any(c.choices and c.choices[0].finish_reason for c in chunks)
            return str(chunks[0].model)
        assert answer.choices[0].message.content is not None
        return str(answer.model)


@pytest.fixture(scope="module")
def litellm_starting(
    hosts: dict[str, Daemon], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Proxy]]:
    """The proxy on the config for `a` and `b`, started with the module's first test so
    its slow start overlaps the tests that do not need it."""
    folder = tmp_path_factory.mktemp("litellm-hosts")
    config = folder / "config.yaml"
    write_config(hosts, config)
    port = free_port()
    exe = Path(sys.executable).parent / "litellm"
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOG": "ERROR"}
    env.pop("DATABASE_URL", None)
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with (folder / "litellm.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc, Proxy(f"http://127.0.0.1:{port}", folder / "litellm.log")
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def proxy(litellm_starting: tuple[subprocess.Popen[bytes], Proxy]) -> Proxy:
    proc, running = litellm_starting
    wait_http(f"{running.url}/health/liveliness", proc)
    return running


def chats(daemon: Daemon) -> int:
    """Chat completions this daemon answered with 200 (its /metrics)."""
    text = daemon.client().get("/metrics").text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlxctl_requests_total"
        and sample.labels.get("route") == "/v1/chat/completions"
        and sample.labels.get("status") == "200"
    )


def test_the_config_groups_every_host_under_one_name(
    hosts: dict[str, Daemon], tmp_path: Path
) -> None:
    config = write_config(hosts, tmp_path / "litellm.yaml")
    hosted = [e for e in config["model_list"] if "mlxctl_host" in e["model_info"]]
    pairs = {(e["model_name"], e["litellm_params"]["api_base"]) for e in hosted}
    a, b = (f"{hosts[name].url}/v1" for name in "ab")
    assert pairs == {("q", a), ("q", b), ("q@a", a), ("q@b", b)}
    assert all(e["litellm_params"]["model"] == "openai/q" for e in hosted)
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert (tmp_path / "litellm.yaml").stat().st_mode & 0o077 == 0  # it may hold peers' keys
    # `w` is registered on b but not loaded: only --include-on-demand lists it, behind q's hosts.
    assert not any(e["model_name"].startswith("w") for e in hosted)
    wide = write_config(hosts, tmp_path / "wide.yaml", "--include-on-demand")
    w = [e for e in wide["model_list"] if e["model_name"] == "w"]
    assert [(e["litellm_params"]["api_base"], e["litellm_params"]["order"]) for e in w] == [(b, 2)]


def test_watch_picks_up_a_model_loaded_on_the_second_host(
    hosts: dict[str, Daemon], tmp_path: Path
) -> None:
    a, b = hosts["a"], hosts["b"]
    source = Gateway(
        [], "127.0.0.1", Host("a", a.url), hosts=[Host("a", a.url), Host("b", b.url)], local="a"
    )
    said: list[str] = []
    stub = StubProxy([])
    out = tmp_path / "watched.yaml"
    with stub.admin() as admin:
        watchers = [
            Watcher(source, ProxySink(admin), 0, said.append),
            Watcher(source, FileSink(out), 0, said.append),
        ]
        for watcher in watchers:
            watcher.round()
        before = {m["model_name"] for m in stub.models}
        assert "w" not in before and "w@b" not in before
        assert b.client().post("/api/admin/load", json={"model": "w"}, timeout=120).is_success
        try:
            stub.posts.clear()
            for watcher in watchers:
                watcher.round()
            added = [(p, body["model_name"]) for p, body in stub.posts]
            assert added == [("/model/new", "w"), ("/model/new", "w@b")]
            written = {e["model_name"] for e in yaml.safe_load(out.read_text())["model_list"]}
            assert {"w", "w@b"} <= written
            stub.posts.clear()
            watchers[0].round()  # nothing changed: nothing sent
            assert stub.posts == []
        finally:
            b.client().post("/api/admin/unload", json={"model": "w"}, timeout=60)
        watchers[0].round()
    assert {p for p, _ in stub.posts} == {"/model/delete"}
    assert {m["model_name"] for m in stub.models} == before
    assert "added     w@b" in said and "deleted   w@b" in said


def test_both_hosts_receive_traffic_and_model_at_host_pins_one(
    hosts: dict[str, Daemon], proxy: Proxy
) -> None:
    a, b = hosts["a"], hosts["b"]
    start = {name: chats(d) for name, d in hosts.items()}
    for _ in range(12):
        assert proxy.ask("q") == "q"
    spread = {name: chats(d) - start[name] for name, d in hosts.items()}
    assert sum(spread.values()) == 12
    assert spread["a"] > 0 and spread["b"] > 0, spread
    before_a, before_b = chats(a), chats(b)
    for _ in range(3):
        proxy.ask("q@b")
    assert (chats(a), chats(b)) == (before_a, before_b + 3)


def test_every_request_succeeds_with_one_host_killed(
    hosts: dict[str, Daemon], proxy: Proxy
) -> None:
    a, b = hosts["a"], hosts["b"]
    source = Gateway([], "127.0.0.1", Host("a", a.url), hosts=[Host("a", a.url), Host("b", b.url)])
    stub = StubProxy([])
    said: list[str] = []
    with stub.admin() as admin:
        watcher = Watcher(source, ProxySink(admin), 0, said.append)
        watcher.round()
        kill_host(b)
        before = chats(a)
        for _ in range(16):
            assert proxy.ask("q") == "q"
        assert proxy.ask("q", stream=True) == "q"
        assert chats(a) == before + 17
        # --watch takes the dead host's deployments out, so LiteLLM stops trying it.
        watcher.round()
    assert {m["litellm_params"]["api_base"] for m in stub.models} == {f"{a.url}/v1"}
    assert any(line.startswith("down      host 'b'") for line in said)
    assert "deleted   q@b" in said
