"""A GGUF model behaves like an MLX model through `mlxctl serve`, and can sit on a slot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed")
pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (pip install mlxctl[gguf])"
)

from mlxctl.factory.gguf import make_gguf
from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, StartDaemon, real_worker_command
from tests.api.dialect_daemon import module_daemon
from tests.slots.conftest import base_port, slot_env  # noqa: F401

ASK = [{"role": "user", "content": "Tell me about the sea."}]
MODELS = ["q", "g"]  # the same tiny qwen2: MLX safetensors and a Q8_0 GGUF


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("gguf-daemon")
    folder = root / "gguf"
    make_gguf(folder, arch="qwen2", size="tiny", quant="Q8_0")
    with module_daemon(root) as daemon:
        registry = open_registry(Settings.from_env({"MLXCTL_HOME": str(root / "home")}))
        try:
            record = register_path(registry, folder, slug="g")
        finally:
            registry.db.close()
        assert record.format == "gguf"
        yield daemon


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=daemon.url + "/v1", api_key="x", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_stop_and_usage(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(model=model, messages=ASK, max_tokens=12, temperature=0)
    text = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.prompt_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=ASK,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # greedy: the stream says what the plain answer said
    assert chunks[-1].usage is not None

    if len(text) > 6:  # a stop string from the middle of the answer is never emitted
        stop = text[3:6]
        stopped = client.chat.completions.create(
            model=model, messages=ASK, max_tokens=12, temperature=0, stop=[stop]
        )
        assert stopped.choices[0].message.content == text[: text.index(stop)]
        assert stopped.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", MODELS)
def test_errors_have_the_same_shape(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as overflow:
        long = [{"role": "user", "content": "sea " * 6000}]
        client.chat.completions.create(model=model, messages=long, max_tokens=2)
    assert overflow.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model=model, messages=ASK, n=2)
    assert unsupported.value.param == "n"


@pytest.mark.parametrize("model", MODELS)
def test_ollama_client(daemon: Daemon, model: str) -> None:
    client = ollama.Client(host=daemon.url)
    try:
        reply = client.chat(model=model, messages=ASK, options={"num_predict": 4})
        assert reply.done and reply.eval_count and 0 < reply.eval_count <= 4
        assert reply.prompt_eval_count and reply.total_duration
        parts = list(
            client.chat(model=model, messages=ASK, stream=True, options={"num_predict": 4})
        )
        assert parts[-1].done
    finally:
        client._client.close()


def test_a_gguf_model_on_a_slot(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gguf"
    make_gguf(folder, arch="qwen2", size="tiny", quant="Q4_0")
    registry = open_registry()
    try:
        register_path(registry, folder, slug="slotted")
    finally:
        registry.db.close()
    daemon = start_daemon(env={**slot_env, "MLXCTL_WORKER_COMMAND": real_worker_command()})
    loaded = daemon.client().post(
        "/api/admin/slots/load", json={"model": "slotted", "slot": "beta"}
    )
    assert loaded.status_code == 200, loaded.text
    port = base_port(slot_env) + 1
    # The gateway talks to the slot port directly.
    reply = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"messages": ASK, "max_tokens": 3},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] > 0
    stats = httpx.get(f"http://127.0.0.1:{port}/v1/worker/stats", timeout=10).json()
    assert stats["engine"] == "llama.cpp"
    daemon.client().post("/api/admin/slots/unload-all", json={"confirm": True})
