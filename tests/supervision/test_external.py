"""External OpenAI-compatible server commands, supervised like our own workers."""

from __future__ import annotations

import shlex
import signal
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from mlxctl.backend import model_target
from mlxctl.registry import ModelRecord
from mlxctl.supervision.base import LoadError
from mlxctl.supervision.command import render_command
from mlxctl.supervision.process import SupervisionConfig, WorkerProcess

pytestmark = pytest.mark.anyio

# A server with no /health: readiness comes from /v1/models.
_MODELS_ONLY = textwrap.dedent(
    """
    import http.server, json, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/v1/models":
                self.send_error(404)
                return
            body = json.dumps({"object": "list", "data": [{"id": sys.argv[2]}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _worker(tmp_path: Path, command: str, **record: object) -> WorkerProcess:
    rec = ModelRecord(slug="ext", cache_path=str(tmp_path), extra={"command": command}, **record)  # type: ignore[arg-type]
    return WorkerProcess(rec, SupervisionConfig(home=tmp_path, command=["unused"]))


def test_placeholders_are_filled_per_word(tmp_path: Path) -> None:
    rec = ModelRecord(
        slug="g", cache_path=str(tmp_path), format="gguf", extra={"gguf_file": "m.gguf"}
    )
    assert model_target(rec) == str(tmp_path / "m.gguf")
    argv = render_command("srv --model '{model}' --port={port} -H {host}", rec, "127.0.0.1", 9)
    assert argv == ["srv", "--model", str(tmp_path / "m.gguf"), "--port=9", "-H", "127.0.0.1"]
    assert model_target(ModelRecord(slug="m", cache_path="/x")) == "/x"


async def test_a_server_without_health_is_ready_by_its_models(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(_MODELS_ONLY)
    worker = _worker(tmp_path, f"{shlex.quote(sys.executable)} {script} {{port}} {{model}}")
    await worker.start()
    try:
        await worker.wait_ready(20)
        assert worker.state == "ready"
        async with httpx.AsyncClient() as client:
            models = (await client.get(worker.base_url + "/v1/models")).json()
        assert models["data"][0]["id"] == str(tmp_path)
    finally:
        await worker.stop(grace=5)
    assert worker.state == "exited"


async def test_an_external_command_that_segfaults_is_a_load_error(tmp_path: Path) -> None:
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    worker = _worker(tmp_path, f"{shlex.quote(sys.executable)} -c {shlex.quote(crash)} {{port}}")
    await worker.start()
    with pytest.raises(LoadError, match="SIGSEGV"):
        await worker.wait_ready(20)
    assert worker.state == "failed" and worker.returncode == -signal.SIGSEGV
