"""A real worker on a factory GGUF, through the official OpenAI client.

Two tokenizer paths: a bare GGUF (llama.cpp's tokenizer and the GGUF chat template)
and a GGUF with the HF tokenizer.json beside it (mlx-lm's loader).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

from mlxctl.backend import is_gguf
from mlxctl.cli.worker import resolve_model
from mlxctl.engine.llamacpp import LlamaCppEngine
from mlxctl.factory.gguf import make_gguf
from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, serve, sse_lines

_MESSAGES = [{"role": "user", "content": "Count the stars."}]


def _serve(folder: Path) -> Running:
    def load() -> LlamaCppEngine:
        engine = LlamaCppEngine(folder, max_queue=4, context_length=1024)
        engine.start()
        return engine

    return serve(ServedModel(id="tiny-gguf", path=folder), load)


@pytest.fixture(scope="module", params=["llama.cpp-tokenizer", "hf-tokenizer"])
def gguf_worker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("gguf-worker")
    make_gguf(folder, arch="qwen2", quant="Q8_0", keep_tokenizer=request.param == "hf-tokenizer")
    running = _serve(folder)
    yield running
    running.stop()


@pytest.fixture
def client(gguf_worker: Running) -> Iterator[openai.OpenAI]:
    with gguf_worker.client() as c:
        yield c


def test_chat_reports_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny-gguf", messages=_MESSAGES, max_tokens=12, temperature=0
    )
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens >= 1
    assert reply.usage.prompt_tokens > 5
    assert reply.model == "tiny-gguf"


def test_stream_matches_the_whole_reply(client: openai.OpenAI, gguf_worker: Running) -> None:
    whole = client.chat.completions.create(
        model="m", messages=_MESSAGES, max_tokens=12, temperature=0
    )
    body = {"messages": _MESSAGES, "max_tokens": 12, "temperature": 0, "stream": True}
    with (
        httpx.Client(base_url=gguf_worker.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = sse_lines(response)
    assert lines[-1] == "[DONE]"
    pieces = []
    for chunk in client.chat.completions.create(
        model="m", messages=_MESSAGES, max_tokens=12, temperature=0, stream=True
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == (whole.choices[0].message.content or "")


def test_stop_string_is_not_emitted(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="m", messages=_MESSAGES, max_tokens=20, temperature=0
    )
    text = whole.choices[0].message.content or ""
    if len(text) < 6:
        pytest.skip(f"greedy reply too short: {text!r}")
    stop = text[3:6]
    cut = client.chat.completions.create(
        model="m", messages=_MESSAGES, max_tokens=20, temperature=0, stop=stop
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_completions_and_models(client: openai.OpenAI) -> None:
    out = client.completions.create(model="m", prompt="Once upon", max_tokens=5, temperature=0)
    assert out.usage is not None and out.usage.completion_tokens >= 1
    models = client.models.list()
    assert models.data[0].id == "tiny-gguf"


def test_errors_use_the_openai_envelope(client: openai.OpenAI, gguf_worker: Running) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi " * 2000}], max_tokens=4
        )
    assert caught.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=_MESSAGES, temperature=-1)
    stats = httpx.get(f"{gguf_worker.url}/v1/worker/stats").json()
    assert stats["engine"] == "llama.cpp"


def test_forced_text_goes_through_llama_cpp(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=_MESSAGES,
        max_tokens=20,
        temperature=0,
        extra_body={"mlxctl_test_force": "Hello there"},
    )
    assert reply.choices[0].message.content == "Hello there"
    assert reply.choices[0].finish_reason == "stop"


def test_the_format_picks_the_engine(tmp_path: Path) -> None:
    path = make_gguf(tmp_path / "g", quant="Q4_0")
    assert is_gguf(path.parent) and is_gguf(path)
    assert resolve_model(str(path)).path == path.resolve()
    (tmp_path / "mlx").mkdir()
    (tmp_path / "mlx" / "model.safetensors").write_bytes(b"")
    assert not is_gguf(tmp_path / "mlx")


def test_json_schema_is_enforced(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "n": {"type": "integer", "minimum": 0, "maximum": 9},
        },
        "required": ["name", "n"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="m",
        messages=_MESSAGES,
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "star", "schema": schema, "strict": True},
        },
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    value = json.loads(choice.message.content or "")
    assert set(value) == {"name", "n"}
    assert isinstance(value["name"], str) and isinstance(value["n"], int)
