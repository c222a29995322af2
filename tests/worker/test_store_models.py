"""A store model serves as its ModelSpec says: adapter, PARAMETER defaults, SYSTEM, MESSAGE.

One store model is built per module (in its own MLXCTL_HOME) from a spec with
every serving instruction, resolved like `mlxctl worker NAME` does, and served
by a real worker; the prompt the model saw is checked through `usage`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from mlxctl.cli.worker import resolve_model
from mlxctl.errors import InvalidInput, Unavailable
from mlxctl.factory import make_model
from mlxctl.library import build, catalog, inventory
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings
from mlxctl.worker import audit
from mlxctl.worker.app import ServedModel
from mlxctl.worker.chat import ChatPrompter
from mlxctl.worker.requests import parse_chat, parse_completion, request_defaults
from tests.library.test_build import spec_file, write_adapter
from tests.worker.conftest import Running, engine_loader, serve
from tests.worker.test_cli import Proc

SYSTEM = "You answer like a pirate."
FEW_SHOT = [
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Arr, Paris."},
]
# Sampling, not greedy: only the default seed makes two replies equal.
SPEC = f"""FROM tiny
PARAMETER temperature 0.9
PARAMETER seed 1234
PARAMETER max_tokens 6
SYSTEM {SYSTEM}
MESSAGE user {FEW_SHOT[0]["content"]}
MESSAGE assistant {FEW_SHOT[1]["content"]}
ADAPTER ./adapter
"""
DEFAULTS = {"temperature": 0.9, "seed": 1234, "max_tokens": 6}


@dataclass
class StoreModel:
    home: Path
    info: ServedModel


@pytest.fixture(scope="module")
def store_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreModel]:
    root = tmp_path_factory.mktemp("store-model")
    home = root / "home"
    tiny = make_model(root / "tiny-qwen2", arch="qwen2", size="tiny")
    write_adapter(root / "spec" / "adapter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLXCTL_HOME", str(home))
        settings = Settings.from_env()
        registry, layout = open_registry(settings), catalog.open_store(settings)
        try:
            inventory.register_path(registry, tiny, slug="tiny-src")
            catalog.copy(registry, layout, "tiny-src", "tiny")
            build.create(registry, layout, "pirate:v1", spec_file(root / "spec", SPEC))
        finally:
            registry.db.close()
        info = resolve_model("pirate:v1")
    yield StoreModel(home, info)


@pytest.fixture(scope="module")
def served(store_model: StoreModel) -> Iterator[Running]:
    info = store_model.info
    running = serve(info, engine_loader(info.path, adapter_path=info.adapter_path))
    yield running
    running.stop()


@pytest.fixture
def pirate(served: Running) -> Iterator[openai.OpenAI]:
    with served.client() as c:
        yield c


def test_resolve_model_carries_the_spec(store_model: StoreModel) -> None:
    info = store_model.info
    assert info.adapter_path is not None and (info.adapter_path / "adapters.safetensors").is_file()
    assert info.adapter_path.parent == info.path
    assert dict(info.defaults) == DEFAULTS
    assert (info.system, list(info.messages)) == (SYSTEM, FEW_SHOT)


def test_the_audit_line_names_the_adapter_and_the_spec(served: Running) -> None:
    info = served.state.model
    record = audit.audit_record(served.state, host="127.0.0.1", port=0)
    assert record["model"]["adapter_path"] == str(info.adapter_path)
    assert record["defaults"] == DEFAULTS
    assert (record["system_prompt"], record["few_shot_messages"]) == (True, 2)


def _prompt_tokens(state: Any, messages: list[dict[str, Any]]) -> int:
    """Tokens of `messages` rendered by the model's plain template (no preamble added)."""
    return len(ChatPrompter(state.engine.tokenizer).render(messages).tokens)


def test_the_prompt_holds_system_and_few_shot_turns(served: Running, pirate: openai.OpenAI) -> None:
    user: Any = {"role": "user", "content": "Hello there"}
    reply = pirate.chat.completions.create(model="m", messages=[user], max_tokens=1)
    expected = _prompt_tokens(
        served.state, [{"role": "system", "content": SYSTEM}, *FEW_SHOT, user]
    )
    assert reply.usage is not None and reply.usage.prompt_tokens == expected
    assert expected > _prompt_tokens(served.state, [user])

    # The conversation's own system message replaces SYSTEM; the few-shot turns stay.
    own: Any = {"role": "system", "content": "Be brief."}
    reply = pirate.chat.completions.create(model="m", messages=[own, user], max_tokens=1)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == _prompt_tokens(served.state, [own, *FEW_SHOT, user])

    # Completions take the prompt as given.
    text = pirate.completions.create(model="m", prompt="Hello there", max_tokens=1)
    tokens = served.state.engine.tokenizer.encode("Hello there")
    assert text.usage is not None and text.usage.prompt_tokens == len(tokens)


def test_parameter_defaults_apply_and_the_request_wins(pirate: openai.OpenAI) -> None:
    def chat(**options: Any) -> tuple[str, int]:
        reply = pirate.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Tell me a tale"}], **options
        )
        assert reply.usage is not None
        return reply.choices[0].message.content or "", reply.usage.completion_tokens

    first = chat()
    assert first == chat()  # the default seed makes sampling repeatable
    assert first[1] == 6  # the default max_tokens
    assert chat(seed=1234) == first
    assert chat(seed=99)[0] != first[0]
    assert chat(max_tokens=2)[1] == 2
    assert chat(max_completion_tokens=3)[1] == 3
    assert chat(temperature=0, seed=1) == chat(temperature=0, seed=2)


def test_a_damaged_store_model_refuses_to_start() -> None:
    registry = open_registry()
    try:
        registry.add(
            ModelRecord(
                slug="broken:v1",
                cache_path="/nowhere",
                source="store",
                extra={"store": {"name": "broken:v1"}, "store_damaged": ["model.safetensors"]},
            )
        )
    finally:
        registry.db.close()
    with pytest.raises(Unavailable) as caught:
        resolve_model("broken:v1")
    assert "damaged" in caught.value.message and "model.safetensors" in caught.value.message
    assert caught.value.hint is not None and "mlxctl store verify broken:v1" in caught.value.hint

    proc = Proc("broken:v1", "--port", "0")
    try:
        assert proc.popen.wait(timeout=60) != 0
        assert "mlxctl store verify broken:v1" in proc.drain()
    finally:
        proc.kill()


def test_the_worker_process_loads_the_adapter(
    store_model: StoreModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXCTL_HOME", str(store_model.home))
    proc = Proc("pirate:v1", "--port", "0")
    try:
        record = proc.event("worker.ready")
        assert record["model"]["adapter_path"] == str(store_model.info.adapter_path)
        assert record["defaults"] == DEFAULTS
    finally:
        proc.kill()


# The pieces, without a worker.


def test_request_defaults_map_ollama_names_and_check_values() -> None:
    defaults, ignored = request_defaults(
        {"repeat_penalty": 1.1, "num_predict": 9, "stop": ["###"], "num_ctx": 4096}
    )
    assert defaults == {"repetition_penalty": 1.1, "max_tokens": 9, "stop": ["###"]}
    assert ignored == ["num_ctx"]
    # The canonical name wins over an alias, in either order; -1 means no limit.
    assert request_defaults({"max_tokens": 5, "num_predict": 7})[0] == {"max_tokens": 5}
    assert request_defaults({"num_predict": 7, "max_tokens": 5})[0] == {"max_tokens": 5}
    assert request_defaults({"num_predict": -1})[0] == {}
    with pytest.raises(InvalidInput, match="PARAMETER temperature"):
        request_defaults({"temperature": 9.0})


def test_parsers_fill_unset_fields_from_defaults() -> None:
    defaults = {"temperature": 0.3, "top_k": 5, "max_tokens": 8, "stop": ["END"], "seed": 4}
    body = {"messages": [{"role": "user", "content": "x"}], "temperature": 1.2, "stop": "!"}
    spec = parse_chat(body, vocab_size=100, defaults=defaults)
    assert (spec.sampling.temperature, spec.sampling.top_k, spec.sampling.seed) == (1.2, 5, 4)
    assert (spec.max_tokens, spec.stop) == (8, ["!"])
    spec = parse_chat({**body, "max_completion_tokens": 2}, vocab_size=100, defaults=defaults)
    assert spec.max_tokens == 2
    spec = parse_completion({"prompt": "x"}, vocab_size=100, defaults=defaults)
    assert (spec.sampling.temperature, spec.max_tokens, spec.stop) == (0.3, 8, ["END"])


def test_preamble_order(tokenizer: Any) -> None:
    prompter = ChatPrompter(tokenizer, system=SYSTEM, few_shot=FEW_SHOT)
    user = {"role": "user", "content": "Hi"}
    assert prompter.with_preamble([user]) == [
        {"role": "system", "content": SYSTEM},
        *FEW_SHOT,
        user,
    ]
    own = {"role": "system", "content": "Mine"}
    assert prompter.with_preamble([own, user]) == [own, *FEW_SHOT, user]
    text = prompter.render([user]).text
    positions = [text.index(s) for s in (SYSTEM, "Capital of France?", "Arr, Paris.", "Hi<")]
    assert positions == sorted(positions)
