"""Workers are part of the trust boundary: the same Host/Origin/body checks as the daemon,
and the key whenever they have one (`--api-key-file` or MLXCTL_API_KEY)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from mlxctl.httpguard import write_key_file
from tests.worker.conftest import Running
from tests.worker.test_cli import Proc

CHAT = "/v1/chat/completions"
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
EVIL = "http://attacker.example"


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlxctl.cli.main", "worker", *args]


def test_a_worker_beyond_loopback_without_a_key_is_refused(model_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLXCTL_API_KEY"}
    result = subprocess.run(
        worker_command(str(model_path), "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in result.stderr
    assert "MLXCTL_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_a_key_file_others_can_read_is_refused(model_path: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret")
    key_file.chmod(0o644)
    result = subprocess.run(
        worker_command(str(model_path), "--port", "0", "--api-key-file", str(key_file)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "group or others may read it (mode 0644)" in result.stderr
    assert f"chmod 600 {key_file}" in result.stderr


@pytest.fixture(scope="module")
def keyed_worker(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A real `mlxctl worker` on all interfaces with a key file, MLXCTL_ORIGINS set."""
    key = "w0rker-k3y"
    key_file = write_key_file(tmp_path_factory.mktemp("keys"), key)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLXCTL_ORIGINS", "http://localhost:*")
        env.delenv("MLXCTL_API_KEY", raising=False)
        proc = Proc(
            str(model_path), "--host", "0.0.0.0", "--port", "0", "--api-key-file", str(key_file)
        )
    try:
        port = proc.event("worker.listening")["port"]
        audit = proc.event("worker.ready")
        assert audit["listen"]["api_key"] is True
        yield f"http://127.0.0.1:{port}", key
    finally:
        proc.kill()


def test_a_keyed_worker_needs_the_key_on_every_route_but_health(
    keyed_worker: tuple[str, str],
) -> None:
    url, key = keyed_worker
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    for method, path in (("GET", "/v1/models"), ("POST", CHAT), ("GET", "/v1/worker/stats")):
        reply = httpx.request(method, url + path, json=HI)
        assert reply.status_code == 401, path
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "invalid_api_key"
        assert reply.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/v1/models", headers={"x-api-key": key}).status_code == 200
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_a_keyed_worker_checks_host_and_origin_first(keyed_worker: tuple[str, str]) -> None:
    url, key = keyed_worker
    auth = {"Authorization": f"Bearer {key}"}
    rebound = httpx.get(f"{url}/v1/models", headers={**auth, "Host": "attacker.example"})
    assert rebound.status_code == 403
    assert rebound.json()["error"]["code"] == "forbidden_host"
    # Listening on 0.0.0.0: any IP literal of this machine is an address it answers.
    assert httpx.get(f"{url}/v1/models", headers={**auth, "Host": "10.0.0.7:1"}).status_code == 200
    cross = httpx.get(f"{url}/v1/models", headers={**auth, "Origin": EVIL})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "forbidden_origin"
    page = "http://localhost:3000"
    preflight = httpx.options(
        url + CHAT,
        headers={"Origin": page, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == page
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    listed = httpx.get(f"{url}/v1/models", headers={**auth, "Origin": page})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == page


def test_the_in_process_worker_refuses_what_a_web_page_sends(worker: Running) -> None:
    url = worker.url
    rebound = httpx.post(url + CHAT, json=HI, headers={"Host": "attacker.example:8080"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden_host"
    cross = httpx.post(url + CHAT, json=HI, headers={"Origin": EVIL})
    assert cross.status_code == 403
    assert (
        httpx.options(
            url + CHAT, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}
        ).status_code
        == 403
    )
    plain = httpx.post(
        url + CHAT, content=b'{"messages": []}', headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415
    assert "Content-Type: application/json" in plain.json()["error"]["message"]
    big = httpx.post(
        url + "/v1/embeddings",
        content=b" " * (33 << 20),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    deep = b'{"messages": ' + b"[" * 200 + b"]" * 200 + b"}"
    nested = httpx.post(url + CHAT, content=deep, headers={"content-type": "application/json"})
    assert nested.status_code == 400 and "levels deep" in nested.json()["error"]["message"]
    assert httpx.post(url + CHAT, json=HI, timeout=60).status_code == 200
