"""The generated config in the real LiteLLM proxy: a slot swap needs no proxy restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlxctl.errors import InvalidInput, Unavailable
from mlxctl.gateway.litellm import on_demand_entry
from mlxctl.gateway.litellm_admin import NEEDS_DB_HINT, LiteLLMAdmin, sync
from tests.gateway.conftest import MASTER_KEY, FakeWorker, stop

pytestmark = pytest.mark.slow


def chat(proxy: str, model: str) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    response = httpx.post(
        f"{proxy}/v1/chat/completions", json=body, headers=headers, timeout=60, trust_env=False
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def served_model(port: int) -> str:
    models = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False).json()
    return str(models["data"][0]["id"])


def test_a_slot_swap_reaches_the_new_model_without_restarting_litellm(
    litellm_proxy: tuple[str, Path], slot_port: int, fake_worker: FakeWorker
) -> None:
    proxy, _config = litellm_proxy
    worker_a = fake_worker("model-a", slot_port)
    # Each fake numbers its answers from 1: two direct requests put A's counter at 2.
    for _ in range(2):
        httpx.post(
            f"http://127.0.0.1:{slot_port}/v1/chat/completions",
            json={"messages": [], "max_tokens": 1},
            trust_env=False,
        )
    first = chat(proxy, "jerry-xl")
    # LiteLLM answers with the alias the client asked for, not the upstream model.
    assert first["model"] == "jerry-xl"
    assert first["id"] == "chatcmpl-fake3"  # A's third answer
    assert first["system_fingerprint"] == "fake-model-a"
    assert first["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "

    stop(worker_a)
    fake_worker("model-b", slot_port)
    assert served_model(slot_port) == "model-b"
    second = chat(proxy, "jerry-xl")
    assert second["id"] == "chatcmpl-fake1"  # the first answer of a fresh process: B
    assert second["system_fingerprint"] == "fake-model-b"
    assert second["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "


def test_the_proxy_loaded_every_generated_entry(
    litellm_proxy: tuple[str, Path], slot_port: int
) -> None:
    proxy, config = litellm_proxy
    with LiteLLMAdmin(proxy, MASTER_KEY) as admin:
        models = {m["model_name"]: m for m in admin.models()}
    expected = yaml.safe_load(config.read_text())["model_list"]
    for entry in expected:
        params = models[entry["model_name"]]["litellm_params"]
        assert params["api_base"] == entry["litellm_params"]["api_base"]
        assert params["model"] == entry["litellm_params"]["model"]
    assert models["jerry-xl"]["model_info"]["db_model"] is False
    assert models["jerry-xl"]["model_info"]["mlxctl_managed"] is True  # what --sync looks for


def test_sync_leaves_config_models_and_needs_a_database_to_add(
    litellm_proxy: tuple[str, Path],
) -> None:
    proxy, config = litellm_proxy
    entries = yaml.safe_load(config.read_text())["model_list"]
    with LiteLLMAdmin(proxy, MASTER_KEY) as admin:
        assert {a.action for a in sync(admin, entries)} == {"unchanged"}
        extra = on_demand_entry("tiny", "http://127.0.0.1:1", keyed=False)
        with pytest.raises(Unavailable) as raised:
            sync(admin, [extra])
    assert "No DB Connected" in raised.value.message
    assert raised.value.hint == NEEDS_DB_HINT


def test_a_wrong_master_key_is_named(litellm_proxy: tuple[str, Path]) -> None:
    proxy, _ = litellm_proxy
    with LiteLLMAdmin(proxy, "sk-wrong") as admin, pytest.raises(InvalidInput) as raised:
        admin.models()
    assert "--master-key" in str(raised.value.hint)
