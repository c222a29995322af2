"""Real workers on a tiny factory model, served by uvicorn on free ports.

`worker` is the session's main server (real engine, test hooks on). Other
fixtures start their own on the same model with other limits or overrides.
`serve()` runs any worker app in a background thread and waits for /health.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from mlx_lm.tokenizer_utils import load as load_tokenizer

from mlxctl.engine.generator import Engine
from mlxctl.factory import make_model
from mlxctl.listen import bind
from mlxctl.worker.app import ServedModel, WorkerEngine, WorkerState, create_app


@dataclass
class Running:
    url: str
    state: WorkerState
    stop: Callable[[], None]

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


def serve(
    model: ServedModel,
    load_engine: Callable[[], WorkerEngine],
    *,
    wait: bool = True,
    **options: Any,
) -> Running:
    """Start a worker app on 127.0.0.1:<free port> in a thread (test hooks on); `options`
    (`settings`, `guard`) go to `create_app`."""
    app = create_app(model, load_engine, test_hooks=True, **options)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    state: WorkerState = app.state.worker

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

    deadline = time.monotonic() + 60
    while not server.started or (wait and state.status == "loading"):
        if time.monotonic() > deadline or not thread.is_alive():
            stop()
            raise RuntimeError("the test worker did not start")
        time.sleep(0.02)
    return Running(url, state, stop)


def engine_loader(path: Path, **options: Any) -> Callable[[], Engine]:
    def load() -> Engine:
        engine = Engine(path, **options)
        engine.start()
        return engine

    return load


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("worker-model") / "tiny-qwen2", arch="qwen2")


@pytest.fixture(scope="session")
def tokenizer(model_path: Path) -> Any:
    return load_tokenizer(model_path)


@pytest.fixture(scope="session")
def worker(model_path: Path) -> Iterator[Running]:
    running = serve(
        ServedModel(id="tiny-qwen2", path=model_path, repo_id="mlxctl-factory/tiny-qwen2"),
        engine_loader(model_path, max_batch=4, max_queue=16),
    )
    yield running
    running.stop()


@pytest.fixture
def client(worker: Running) -> Iterator[openai.OpenAI]:
    with worker.client() as c:
        yield c


@pytest.fixture
def http(worker: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=60) as c:
        yield c


def sse_lines(response: httpx.Response) -> list[str]:
    """The raw `data:` payloads of a streamed response, checking the framing as it goes."""
    body = response.read().decode()
    assert body.endswith("\n\n"), body[-200:]
    events = body[:-2].split("\n\n")
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, event
    return [event[len("data: ") :] for event in events]
