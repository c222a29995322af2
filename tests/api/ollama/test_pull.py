"""`/api/pull` with the official `ollama` client: NDJSON progress, then a servable model."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from mlxctl.factory import make_model
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon
from tests.store.hub_server import FakeHub

REPO = "mlx-test/pulled-qwen2"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    hub = FakeHub()
    root = tmp_path_factory.mktemp("hub")
    hub.add_repo(REPO, make_model(root / "model", arch="qwen2", size="tiny"))
    hub.add_repo(
        "mlx-test/gated", make_model(root / "gated", arch="qwen2", size="tiny"), gated=True
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[Daemon]:
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}
    with module_daemon(tmp_path_factory.mktemp("pull"), env) as daemon:
        yield daemon


@pytest.fixture
def client(daemon: Daemon) -> Iterator[ollama.Client]:
    client = ollama.Client(host=daemon.url)
    yield client
    client._client.close()


def test_pull_streams_progress_then_serves(client: ollama.Client) -> None:
    updates = list(client.pull(REPO, stream=True))
    statuses = [u.status for u in updates]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    sized = [u for u in updates if u.total]
    assert sized and max(u.completed or 0 for u in sized) == max(u.total or 0 for u in sized)
    names = [m.model for m in client.list().models]
    assert "pulled-qwen2" in names
    reply = client.chat(
        model="pulled-qwen2",
        messages=[{"role": "user", "content": "hi"}],
        options={"num_predict": 3},
    )
    assert reply.done and reply.eval_count and reply.eval_count <= 3


def test_pull_without_stream_and_errors(client: ollama.Client) -> None:
    assert client.pull(REPO, stream=False).status == "success"  # already there: a no-op pull
    with pytest.raises(ollama.ResponseError, match="HF_TOKEN"):
        client.pull("mlx-test/gated", stream=False)
    with pytest.raises(ollama.ResponseError, match="gated"):
        list(client.pull("mlx-test/gated", stream=True))
