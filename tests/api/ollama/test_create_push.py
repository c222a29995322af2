"""Ollama's model management with the official `ollama` client, end to end: create (from a
model, and from uploaded blobs), push to a real OCI registry, pull into a second home,
chat; copy and delete. Two daemons (two homes) stand in for two machines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon
from tests.store.registry_server import RegistryServer

SYSTEM = "You are a pirate. Answer every question in the words of an old sea captain."
BLOB_CAP = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"MLXCTL_MAX_BLOB_BYTES": str(BLOB_CAP)}
    with module_daemon(tmp_path_factory.mktemp("first"), env) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with module_daemon(tmp_path_factory.mktemp("second")) as daemon:
        yield daemon


Connect = Callable[[Daemon], ollama.Client]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """`connect(daemon)`: an official client for it, closed after the test."""
    clients: list[ollama.Client] = []

    def client(daemon: Daemon) -> ollama.Client:
        clients.append(ollama.Client(host=daemon.url, timeout=120))
        return clients[-1]

    yield client
    for one in clients:
        one._client.close()


def test_create_push_pull_chat(
    first: Daemon, second: Daemon, oci_registry: RegistryServer, connect: Connect
) -> None:
    one, two = connect(first), connect(second)
    created = list(
        one.create(
            model="pirate",
            from_="q",
            system=SYSTEM,
            parameters={"temperature": 0.0, "num_predict": 3, "num_ctx": 2048},
            stream=True,
        )
    )
    assert created[0].status == "parsing modelfile" and created[-1].status == "success"
    shown = one.show("pirate")
    assert shown.modelfile is not None and SYSTEM in shown.modelfile
    assert "PARAMETER max_tokens 3" in shown.modelfile

    reference = f"{oci_registry.host}/library/pirate:latest"
    pushed = list(one.push(reference, stream=True))
    assert pushed[0].status == "retrieving manifest" and pushed[-1].status == "success"
    sized = [p for p in pushed if p.total]
    assert sized and all(p.digest and p.digest.startswith("sha256:") for p in sized)
    assert one.push(reference, stream=False).status == "success"  # all there: skipped

    assert two.pull(reference, stream=False).status == "success"
    assert "pirate" in [m.model for m in two.list().models]
    assert SYSTEM in (two.show("pirate").modelfile or "")
    ask = [{"role": "user", "content": "Where is the treasure?"}]
    reply = two.chat(model="pirate", messages=ask)
    base = two.chat(model="q", messages=ask, options={"num_predict": 3})
    assert reply.done and reply.eval_count is not None and reply.eval_count <= 3  # its num_predict
    # The model's system prompt went into the prompt: more tokens than the bare base's.
    assert (reply.prompt_eval_count or 0) > (base.prompt_eval_count or 0) + 10


def test_copy_and_delete(first: Daemon, connect: Connect) -> None:
    client = connect(first)
    list(client.create(model="to-copy", from_="q", system="short", stream=True))
    assert client.copy("to-copy", "copied").status == "success"
    names = [m.model for m in client.list().models]
    assert "copied" in names and "to-copy" in names
    assert client.delete("copied").status == "success"
    assert "copied" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as refused:
        client.delete("copied")
    assert refused.value.status_code == 404


def test_upload_blobs_then_create_from_files(
    first: Daemon, tiny_model: Path, connect: Connect
) -> None:
    client = connect(first)
    http = first.client()
    files = {}
    for path in sorted(p for p in tiny_model.iterdir() if p.is_file()):
        if path.suffix in (".safetensors", ".json", ".jinja") or path.name.startswith("tokenizer"):
            files[path.name] = client.create_blob(path)
    some = next(iter(files.values()))
    assert http.head(f"/api/blobs/{some}").status_code == 200
    assert http.post(f"/api/blobs/{some}", content=b"ignored").status_code == 200  # stored
    assert client.create(model="uploaded", files=files, stream=False).status == "success"
    reply = client.generate(model="uploaded", prompt="hi", options={"num_predict": 2})
    assert reply.done and reply.eval_count is not None and reply.eval_count <= 2


def test_a_blob_upload_is_checked_and_capped(first: Daemon) -> None:
    http = first.client()
    wrong = "sha256:" + "0" * 64
    answer = http.post(f"/api/blobs/{wrong}", content=b"not those bytes")
    assert answer.status_code == 400 and "digest mismatch" in answer.json()["error"]
    assert http.head(f"/api/blobs/{wrong}").status_code == 404

    def too_big() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        for _ in range(BLOB_CAP // (1 << 20) + 1):
            yield b"\0" * (1 << 20)

    capped = http.post(f"/api/blobs/{wrong}", content=too_big())
    assert capped.status_code == 413 and "MLXCTL_MAX_BLOB_BYTES" in capped.json()["error"]
    blobs = first_home_blobs(first)
    assert not [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]
    assert http.post(f"/api/blobs/{wrong}", content=b"x" * (BLOB_CAP + 1)).status_code == 413
    assert http.head("/api/blobs/sha256:short").status_code == 400
    wrong_method = http.put(f"/api/blobs/{wrong}", content=b"bytes")
    assert wrong_method.status_code == 405  # the router's answer, not the JSON guard's 415
    assert set(wrong_method.headers["allow"].split(", ")) == {"HEAD", "POST"}
    # Only this route takes a raw body: the JSON routes still want JSON.
    refused = http.post("/api/create", content=b"{}", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415


def first_home_blobs(daemon: Daemon) -> Path:
    return daemon.log_path.parent / "home" / "store" / "blobs"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "x", "from": "q", "template": "{{ .Prompt }}"}, "Go template"),
        ({"model": "x", "from": "q", "parameters": {"mirostat": 1}}, "'mirostat'"),
        ({"model": "x", "from": "q", "parameters": {"top_k": 1.5}}, "whole number"),
        ({"model": "x", "from": "q", "quantize": "f16"}, "quantize"),
        ({"model": "x"}, "either 'from'"),
        ({"model": "x", "files": {"config.json": "sha256:" + "1" * 64}}, "has not been uploaded"),
        ({"model": "x", "files": {"model.gguf": "sha256:" + "1" * 64}}, "not a file of an MLX"),
        ({"model": "x", "modelfile": "FROM q"}, "no longer takes 'modelfile'"),
        ({"model": "Bad Name", "from": "q"}, "invalid model name"),
        ({"model": "x", "from": "no-such-model"}, "no such model"),
    ],
)
def test_create_refuses_what_it_cannot_honour(
    first: Daemon, body: dict[str, object], says: str
) -> None:
    answer = first.client().post("/api/create", json={**body, "stream": False})
    assert answer.status_code in (400, 404), answer.text
    assert says in answer.json()["error"]


def test_push_refusals(first: Daemon, oci_registry: RegistryServer, connect: Connect) -> None:
    client = connect(first)
    with pytest.raises(ollama.ResponseError, match="does not name a registry") as no_registry:
        client.push("pirate", stream=False)
    assert no_registry.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as missing:
        list(client.push(f"{oci_registry.host}/library/nothing-here:latest", stream=True))
    assert missing.value.status_code == 404
    with httpx.Client(base_url=first.url) as http:
        answer = http.post("/api/push", json={"model": "a/b", "stream": False})
    assert answer.status_code == 400 and "names no registry" in answer.json()["error"]
