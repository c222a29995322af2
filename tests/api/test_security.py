"""Localhost by default; beyond it only with an API key, and then every route needs it."""

from __future__ import annotations

import subprocess

import httpx

from mlxctl.api.app import check_bind, is_loopback
from tests.api.conftest import StartDaemon, serve_command


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "secret")


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
