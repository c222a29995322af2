"""`sync` decides add / update / unchanged from the proxy's /model/info (a stub proxy)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mlxctl.errors import Unavailable
from mlxctl.gateway.litellm import HOST, MANAGED, deployment, on_demand_entry, slot_entry
from mlxctl.gateway.litellm_admin import NEEDS_DB_HINT, LiteLLMAdmin, sync
from mlxctl.slots.table import SlotSpec


class StubProxy:
    """LiteLLM's model API over a list: /model/new and /model/delete change it (as the
    proxy's database would), or answer "No DB Connected" with `status` 500."""

    def __init__(self, models: list[dict[str, Any]], status: int = 200) -> None:
        self.models = models
        self.status = status
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.added = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer sk-master"
        if request.url.path == "/model/info":
            return httpx.Response(200, json={"data": self.models})
        body = json.loads(request.content)
        self.posts.append((request.url.path, body))
        if self.status != 200:
            error = {"error": "No DB Connected. Here's how to do it - https://…"}
            return httpx.Response(self.status, json={"detail": error})
        if request.url.path == "/model/delete":
            self.models = [m for m in self.models if m["model_info"]["id"] != body["id"]]
            return httpx.Response(200, json={"message": "deleted"})
        if request.url.path == "/model/new":
            self.added += 1
            ident = f"new-{self.added}"
            info = {**body["model_info"], "id": ident, "db_model": True}
            self.models.append({**body, "model_info": info})
            return httpx.Response(200, json={"model_id": ident, "model_name": body["model_name"]})
        return httpx.Response(200, json={"model_id": body["model_info"]["id"]})

    def admin(self) -> LiteLLMAdmin:
        return LiteLLMAdmin("http://proxy", "sk-master", transport=httpx.MockTransport(self.handle))


def listed(
    name: str, api_base: str, *, db: bool, ident: str = "id-1", ours: bool = False
) -> dict[str, Any]:
    params = {"model": f"openai/{name}", "api_base": api_base}
    info: dict[str, Any] = {"id": ident, "db_model": db}
    if ours:
        info[MANAGED] = True
    return {"model_name": name, "litellm_params": params, "model_info": info}


ENTRY = slot_entry(SlotSpec(8100, "jerry-xl"), "127.0.0.1")


def test_a_new_alias_is_added() -> None:
    proxy = StubProxy([])
    with proxy.admin() as admin:
        [action] = sync(admin, [ENTRY])
    assert (action.action, action.model_id) == ("added", "new-1")
    assert proxy.posts == [("/model/new", ENTRY)]


def test_a_stored_alias_at_another_port_is_updated_in_place() -> None:
    proxy = StubProxy([listed("jerry-xl", "http://old:9000/v1", db=True, ident="db-7", ours=True)])
    with proxy.admin() as admin:
        [action] = sync(admin, [ENTRY])
    assert (action.action, action.model_id) == ("updated", "db-7")
    path, body = proxy.posts[0]
    assert path == "/model/update"
    assert body["model_info"]["id"] == "db-7"
    assert body["litellm_params"]["api_base"] == "http://127.0.0.1:8100/v1"


@pytest.mark.parametrize("db", [True, False])
def test_a_model_mlxctl_did_not_create_is_a_conflict_and_untouched(db: bool) -> None:
    # Someone else's `jerry-xl` (in the DB or the config file): never repointed, never joined.
    proxy = StubProxy([listed("jerry-xl", "http://their-server:9000/v1", db=db, ident="theirs")])
    with proxy.admin() as admin:
        [action] = sync(admin, [ENTRY])
    assert (action.action, action.model_id) == ("conflict", "theirs")
    assert proxy.posts == []


def test_every_entry_carries_the_mark() -> None:
    assert ENTRY["model_info"][MANAGED] is True
    assert on_demand_entry("tiny", "http://127.0.0.1:1", keyed=False)["model_info"][MANAGED]


def test_an_alias_already_pointing_there_is_left_alone() -> None:
    proxy = StubProxy([listed("jerry-xl", "http://127.0.0.1:8100/v1", db=False)])
    with proxy.admin() as admin:
        assert [a.action for a in sync(admin, [ENTRY])] == ["unchanged"]
    assert proxy.posts == []


def test_no_database_names_the_requirement() -> None:
    proxy = StubProxy([], status=500)
    with proxy.admin() as admin, pytest.raises(Unavailable) as raised:
        sync(admin, [ENTRY])
    assert "No DB Connected" in raised.value.message
    assert raised.value.hint == NEEDS_DB_HINT


def test_an_unreachable_proxy_is_unavailable() -> None:
    with LiteLLMAdmin("http://127.0.0.1:9", "k") as admin, pytest.raises(Unavailable):
        admin.models()


def host_entry(name: str, host: str, port: int) -> dict[str, Any]:
    return deployment(name, name, f"http://127.0.0.1:{port}/v1", "none", **{HOST: host})


def test_several_hosts_are_deployments_of_one_name_and_a_second_sync_does_nothing() -> None:
    wanted = [host_entry("q", "a", 1), host_entry("q", "b", 2), host_entry("q@b", "b", 2)]
    proxy = StubProxy([])
    with proxy.admin() as admin:
        first = sync(admin, wanted)
        assert [(s.action, s.model_name, s.host) for s in first] == [
            ("added", "q", "a"),
            ("added", "q", "b"),
            ("added", "q@b", "b"),
        ]
        proxy.posts.clear()
        assert {s.action for s in sync(admin, wanted)} == {"unchanged"}
    assert proxy.posts == []


def test_a_deployment_no_host_serves_any_more_is_deleted() -> None:
    proxy = StubProxy([])
    with proxy.admin() as admin:
        sync(admin, [host_entry("q", "a", 1), host_entry("q", "b", 2)])
        gone = sync(admin, [host_entry("q", "a", 1)])
    assert [(s.action, s.host, s.model_id) for s in gone] == [
        ("unchanged", "a", "new-1"),
        ("deleted", "b", "new-2"),
    ]
    assert proxy.posts[-1] == ("/model/delete", {"id": "new-2"})
    assert [m["litellm_params"]["api_base"] for m in proxy.models] == ["http://127.0.0.1:1/v1"]


def test_a_config_file_model_is_never_deleted() -> None:
    # The proxy cannot delete what its config file lists, so sync never asks it to.
    stale = listed("q", "http://127.0.0.1:7/v1", db=False, ours=True)
    proxy = StubProxy([stale])
    with proxy.admin() as admin:
        steps = sync(admin, [host_entry("q", "a", 1)])
    assert [s.action for s in steps] == ["added"]
    assert [path for path, _ in proxy.posts] == ["/model/new"]


def test_a_name_someone_else_serves_is_never_joined_by_another_host() -> None:
    theirs = listed("q", "http://their-server:9000/v1", db=True, ident="theirs")
    proxy = StubProxy([theirs])
    with proxy.admin() as admin:
        steps = sync(admin, [host_entry("q", "a", 1)])
    assert [(s.action, s.model_id) for s in steps] == [("conflict", "theirs")]
    assert proxy.posts == []
