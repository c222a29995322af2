"""Seed 001's gpt-oss on a slot: a gpt_oss factory model, registered as the seed prescribes
(Harmony chat template file, `tool_call_parser: harmony`, `reasoning_parser: harmony`),
loads in a real worker, passes `verify --strict`, and a Harmony tool call forced through
the real engine comes back as OpenAI `tool_calls`."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from mlxctl.factory import make_model
from tests.api.conftest import StartDaemon
from tests.cli.runner import Run
from tests.slots.conftest import base_port

pytestmark = pytest.mark.slow

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALL = (
    '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}'
)
THOUGHT = (
    "<|channel|>analysis<|message|>The user wants a word.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Sunny."
)


def test_gpt_oss_on_a_slot_with_the_seeds_settings(
    start_daemon: StartDaemon,
    slot_env: dict[str, str],
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = make_model(tmp_path / "gpt-oss-tiny", arch="gpt_oss", size="tiny")
    template = tmp_path / "harmony.jinja"  # "the model's Harmony template file"
    template.write_text(json.loads((folder / "tokenizer_config.json").read_text())["chat_template"])
    env = {**slot_env, "MLXCTL_WORKER_COMMAND": "", "MLXCTL_WORKER_TEST_HOOKS": "1"}
    daemon = start_daemon(env=env)
    monkeypatch.setenv("MLXCTL_HOST", daemon.url)

    run("register", str(folder), "--slug", "gpt-oss-tiny").ok()
    run("load", "gpt-oss-tiny", "beta").ok()
    unset = run("verify", "--json")  # as registered: verify says what gpt-oss needs
    assert unset.code == 1
    assert any("tool_call_parser=harmony" in p["problem"] for p in unset.json()["problems"])

    run("unload", "beta").ok()
    refused = run("registry", "set", "gpt-oss-tiny", "--tool-call-parser", "harmony-v2")
    assert refused.code == 2 and "unknown tool call parser 'harmony-v2'" in refused.err
    updated = run(
        "registry", "set", "gpt-oss-tiny",
        "--chat-template", str(template),
        "--tool-call-parser", "harmony",
        "--reasoning-parser", "harmony",
    )  # fmt: skip
    assert updated.code == 0 and "Updated gpt-oss-tiny" in updated.out
    loaded = run("load", "gpt-oss-tiny", "beta")
    assert loaded.code == 0, loaded.err
    verified = run("verify", "--strict")
    assert verified.code == 0, verified.out + verified.err
    assert "All slots verified." in verified.out

    port = base_port(slot_env) + 1
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat.completions.create(
        model="gpt-oss-tiny",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        extra_body={"mlxctl_test_force": CALL},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content in (None, "")
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    # Reasoning and the final answer: no raw <|channel|> tags in what the client reads.
    thought = client.chat.completions.create(
        model="gpt-oss-tiny",
        messages=messages,  # type: ignore[arg-type]
        extra_body={"mlxctl_test_force": THOUGHT},
    )
    message = thought.choices[0].message
    assert message.content == "Sunny."
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "The user wants a word."
