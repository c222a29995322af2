"""Localhost by default; beyond it only with an API key, and then every route needs it.

A web page cannot drive the daemon: foreign Host (DNS rebinding), cross-site Origin
and non-JSON bodies (CSRF) are refused; bodies have a size and a nesting limit.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from mlxctl.registry import ModelRecord
from tests.api.conftest import StartDaemon, serve_command
from tests.store.hub_server import FakeHub


def test_binding_beyond_localhost_without_a_key_refuses_to_start() -> None:
    result = subprocess.run(
        [*serve_command(), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in result.stderr
    assert "MLXCTL_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_a_key_every_route_but_health_needs_it(start_daemon: StartDaemon) -> None:
    daemon = start_daemon({"MLXCTL_API_KEY": "s3cret"}, args=("--host", "0.0.0.0"))
    url = daemon.url
    assert httpx.get(f"{url}/health").status_code == 200
    for method, path in (
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/api/admin/ps"),
        ("GET", "/metrics"),
    ):
        reply = httpx.request(method, url + path, json={})
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["error"]["code"] == "invalid_api_key"
    assert (
        httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    assert (
        httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    )
    assert httpx.get(f"{url}/api/admin/ps", headers={"x-api-key": "s3cret"}).status_code == 200


# A web page must not be able to drive the daemon (DNS rebinding, CSRF) ------------------

EVIL = "http://attacker.example"


def test_a_foreign_host_is_refused_in_each_dialect(start_daemon: StartDaemon) -> None:
    daemon = start_daemon({"MLXCTL_ALLOWED_HOSTS": "proxy.example"})
    url, port = daemon.url, daemon.port
    rebound = {"Host": f"attacker.example:{port}"}
    ollama = httpx.get(f"{url}/api/tags", headers=rebound)
    assert ollama.status_code == 403
    assert list(ollama.json()) == ["error"] and "MLXCTL_ALLOWED_HOSTS" in ollama.json()["error"]
    openai = httpx.get(f"{url}/v1/models", headers=rebound)
    assert openai.status_code == 403 and openai.json()["error"]["code"] == "forbidden_host"
    anthropic = httpx.post(f"{url}/v1/messages", headers=rebound, json={})
    assert anthropic.status_code == 403
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "permission_error"
    assert httpx.get(f"{url}/health", headers=rebound).status_code == 403
    assert daemon.access(ollama.headers["x-request-id"])["error"] == "forbidden_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "proxy.example"):
        assert httpx.get(f"{url}/api/tags", headers={"Host": host}).status_code == 200, host


def test_a_cross_site_text_plain_pull_is_refused_and_pulls_nothing(
    start_daemon: StartDaemon, tiny_models: dict[str, Path]
) -> None:
    hub = FakeHub()
    try:
        hub.add_repo("mlx-test/victim", tiny_models["qwen2"])
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}
        daemon = start_daemon(env)
        body = json.dumps({"model": "mlx-test/victim", "stream": False})
        # What `fetch(url, {method: "POST", mode: "no-cors", body})` sends from another site.
        page = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}
        reply = httpx.post(f"{daemon.url}/api/pull", content=body, headers=page)
        assert reply.status_code == 403
        assert "MLXCTL_ORIGINS" in reply.json()["error"]
        assert "access-control-allow-origin" not in reply.headers
        # Without an Origin (not a browser), text/plain is still refused, with the fix.
        plain = httpx.post(
            f"{daemon.url}/api/pull", content=body, headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        assert "Content-Type: application/json" in plain.json()["error"]
        assert hub.seen == []
        assert httpx.get(f"{daemon.url}/api/tags").json()["models"] == []
        # Cross-site deletes and admin calls are refused the same way.
        delete = httpx.request(
            "DELETE", f"{daemon.url}/api/delete", json={"model": "x"}, headers={"Origin": EVIL}
        )
        assert delete.status_code == 403
        unload = httpx.post(
            f"{daemon.url}/api/admin/slots/unload-all",
            content=b'{"confirm": true}',
            headers=page,
        )
        assert unload.status_code == 403 and unload.json()["error"]["code"] == "forbidden_origin"
    finally:
        hub.stop()


def test_a_64_mib_body_gets_413_and_the_daemon_stays_up(start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    json_type = {"content-type": "application/json"}
    big = b"[" + b"1," * (32 << 20) + b"1]"  # 64 MiB
    with httpx.Client(base_url=daemon.url, timeout=60) as http:
        sized = http.post("/v1/chat/completions", content=big, headers=json_type)
        assert sized.status_code == 413
        assert sized.json()["error"]["code"] == "request_too_large"
        assert str(32 * 1024 * 1024) in sized.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:
            for _ in range(64):
                yield b" " * (1 << 20)

        streamed = http.post("/api/chat", content=chunks(), headers=json_type)
        assert streamed.status_code == 413 and list(streamed.json()) == ["error"]
        assert http.get("/health").status_code == 200
        assert http.get("/api/tags").status_code == 200
    assert daemon.proc.poll() is None


def test_bodies_nested_too_deep_get_400(start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    deep = b'{"model": "m", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for path in ("/v1/chat/completions", "/api/chat", "/v1/messages"):
        reply = httpx.post(
            daemon.url + path, content=deep, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 400, path
        assert "levels deep" in reply.text


def test_listed_origins_get_cors_answers_and_others_are_refused(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon({"MLXCTL_ORIGINS": "http://localhost:*, app://*"})
    page = "http://localhost:5173"
    preflight = httpx.options(
        f"{daemon.url}/v1/chat/completions",
        headers={
            "Origin": page,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == page
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"]
    for name in ("authorization", "content-type", "x-api-key", "anthropic-version",
                 "anthropic-beta", "x-request-id", "x-stainless-os"):  # fmt: skip
        assert name in allowed
    assert int(preflight.headers["access-control-max-age"]) > 0
    assert "Origin" in preflight.headers["vary"]
    # The browser's real request after the preflight: answered, and readable by the page.
    tags = httpx.get(f"{daemon.url}/api/tags", headers={"Origin": page})
    assert tags.status_code == 200 and tags.json() == {"models": []}
    assert tags.headers["access-control-allow-origin"] == page
    assert "x-request-id" in tags.headers["access-control-expose-headers"]
    show = httpx.post(f"{daemon.url}/api/show", json={"model": "nope"}, headers={"Origin": page})
    assert show.status_code == 404 and show.headers["access-control-allow-origin"] == page
    # An origin not listed: no preflight, no request.
    refused = httpx.options(
        f"{daemon.url}/v1/chat/completions",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert httpx.get(f"{daemon.url}/api/tags", headers={"Origin": EVIL}).status_code == 403
    # The daemon's own origin (a page it served) needs no listing.
    own = httpx.get(f"{daemon.url}/api/tags", headers={"Origin": daemon.url})
    assert own.status_code == 200


def test_slot_workers_beyond_loopback_need_a_key() -> None:
    env = {**os.environ, "MLXCTL_SLOT_HOST": "0.0.0.0"}
    env.pop("MLXCTL_API_KEY", None)
    result = subprocess.run(
        [*serve_command(), "--port", "0"], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 2
    assert "refusing to run slot workers on 0.0.0.0 without an API key" in result.stderr
    assert "MLXCTL_SLOT_HOST=127.0.0.1" in result.stderr


def test_a_keyed_daemon_keys_its_workers_and_talks_to_them(
    start_daemon: StartDaemon, register: Callable[..., ModelRecord], tiny_models: dict[str, Path]
) -> None:
    register("q", tiny_models["qwen2"])
    daemon = start_daemon({"MLXCTL_API_KEY": "k3y", "MLXCTL_WORKER_COMMAND": ""})
    hi = {"model": "q", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert daemon.client().post("/v1/chat/completions", json=hi).status_code == 200
    worker = daemon.ps()["q"]["url"]
    # Another local process going around the daemon straight to the worker's port:
    assert httpx.get(f"{worker}/v1/models").status_code == 401
    assert httpx.post(f"{worker}/v1/chat/completions", json=hi).status_code == 401
    assert httpx.get(f"{worker}/health").status_code == 200
    keyed = httpx.get(f"{worker}/v1/models", headers={"Authorization": "Bearer k3y"})
    assert keyed.status_code == 200
