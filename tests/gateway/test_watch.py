"""`Watcher` rounds against hosts that do not answer (the live ones: test_litellm_hosts.py)."""

from __future__ import annotations

from mlxctl.gateway.hosts import Host
from mlxctl.gateway.litellm import HOST, deployment
from mlxctl.gateway.watch import Gateway, ProxySink, Watcher
from tests.gateway.test_litellm_admin import StubProxy
from tests.mcp.stub_daemon import stub_daemon

DEAD = "http://127.0.0.1:9"


def stored(name: str, host: str, ident: str) -> dict[str, object]:
    entry = deployment(name, name, f"{DEAD}/v1", "none", **{HOST: host})
    entry["model_info"].update(id=ident, db_model=True)
    return entry


def test_a_round_where_no_host_answers_changes_nothing() -> None:
    proxy = StubProxy([stored("q", "b", "db-1")])
    said: list[str] = []
    gateway = Gateway([], "127.0.0.1", Host("a", DEAD), hosts=[Host("b", DEAD)])
    with proxy.admin() as admin:
        Watcher(gateway, ProxySink(admin), 0, said.append).run(rounds=2)
    assert proxy.posts == []
    assert said == ["down      host 'b' (http://127.0.0.1:9): no mlxctl daemon at "
                    "http://127.0.0.1:9: start one with `mlxctl serve`"]  # fmt: skip


def test_a_host_that_stops_answering_loses_its_deployments_and_gets_them_back() -> None:
    with stub_daemon() as a, stub_daemon() as b:
        hosts = [Host("a", a.url), Host("b", b.url)]
        proxy = StubProxy([])
        said: list[str] = []
        with proxy.admin() as admin:
            watcher = Watcher(Gateway([], "h", hosts[0], hosts=hosts), ProxySink(admin), 0,
                              said.append)  # fmt: skip
            watcher.round()
            assert {m["model_name"] for m in proxy.models} == {"tiny", "tiny@a", "tiny@b"}
            hosts[1] = Host("b", DEAD)
            watcher.round()
            assert {m["model_name"] for m in proxy.models} == {"tiny", "tiny@a"}
            hosts[1] = Host("b", b.url)
            watcher.round()
    assert {m["model_name"] for m in proxy.models} == {"tiny", "tiny@a", "tiny@b"}
    assert said[-3:] == ["up        host 'b' answers again", "added     tiny", "added     tiny@b"]
