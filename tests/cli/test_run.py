"""`mlxctl run` against a real daemon and worker (tiny qwen2 registered as `q`)."""

from __future__ import annotations

import builtins
import json
from typing import Any

import pytest
from click.testing import CliRunner

from mlxctl.cli import run as run_module
from mlxctl.cli.run import run
from mlxctl.client import DaemonClient
from tests.api.conftest import Daemon
from tests.api.dialect_daemon import THOUGHT

pytestmark = pytest.mark.usefixtures("daemon_host")


def _direct(daemon: Daemon, text: str, **options: Any) -> dict[str, Any]:
    body = {
        "model": "q",
        "messages": [{"role": "user", "content": text}],
        "stream": False,
        "options": {"temperature": 0, "num_predict": 8, **options},
    }
    reply: dict[str, Any] = daemon.client().post("/api/chat", json=body).json()
    return reply


def _invoke(*args: str, stdin: str = "") -> Any:
    return CliRunner().invoke(run, list(args), input=stdin, catch_exceptions=False)


def test_one_prompt_prints_the_answer_the_api_gives(daemon: Daemon) -> None:
    expected = _direct(daemon, "Hello there")["message"]["content"]
    result = _invoke("q", "Hello", "there", "--temperature", "0", "--max-tokens", "8")
    assert result.exit_code == 0
    assert result.stdout == expected + ("" if expected.endswith("\n") else "\n")


def test_piped_input_comes_before_the_prompt_words(daemon: Daemon) -> None:
    expected = _direct(daemon, "some notes\n\nSummarise:")
    result = _invoke(
        "q", "Summarise:", "--temperature", "0", "--max-tokens", "8", "--verbose",
        stdin="some notes\n",
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout.rstrip("\n") == expected["message"]["content"].rstrip("\n")
    # --verbose: the daemon's own counts, on stderr only
    assert f"prompt eval count:    {expected['prompt_eval_count']} token(s)" in result.stderr
    assert "eval rate:" in result.stderr and "tokens/s" in result.stderr
    assert "eval rate" not in result.stdout


def test_nothing_to_send_and_bad_input_are_clear(daemon: Daemon) -> None:
    empty = _invoke("q")
    assert empty.exit_code == 2 and "give a PROMPT" in empty.output
    runner = CliRunner()
    from mlxctl.cli.main import cli

    unknown = runner.invoke(cli, ["run", "no-such-model", "hi"])
    assert unknown.exit_code != 0 and "no-such-model" in str(unknown.exception or unknown.output)
    with pytest.raises(Exception, match="--format must be 'json' or a JSON schema"):
        _invoke("q", "hi", "--format", "{not json")


def test_format_schema_constrains_the_reply(daemon: Daemon) -> None:
    schema = json.dumps(
        {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        }
    )
    result = _invoke("q", "Answer", "--format", schema, "--max-tokens", "20")
    assert result.exit_code == 0
    assert result.stdout.strip() in ('{"ok": true}', '{"ok": false}')


def test_a_conversation_keeps_its_history(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = iter(["Hello", "/?", "Again", "/nope", '"""first', 'second"""', "/clear", "/bye"])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    session = run_module._Session(
        {"model": "q", "options": {"temperature": 0, "num_predict": 4}},
        None,
        show_thinking=True,
        verbose=False,
    )
    sent: list[int] = []
    turn = session.turn

    def counting(client: DaemonClient, text: str) -> Any:
        sent.append(len(session.messages))
        return turn(client, text)

    monkeypatch.setattr(session, "turn", counting)
    with DaemonClient.from_settings() as client:
        session.converse(client)
    # Each turn carried the turns before it; the multi-line message arrived whole.
    assert sent == [0, 2, 4]
    err = capsys.readouterr().err
    assert "/clear" in err and "Unknown command '/nope'" in err
    assert session.messages == []  # /clear emptied it before /bye


def test_reasoning_goes_to_stderr(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    session = run_module._Session(
        {"model": "q", "think": True, "mlxctl_test_force": THOUGHT},
        None,
        show_thinking=True,
        verbose=False,
    )
    with DaemonClient.from_settings() as client:
        reply = session.turn(client, "Weather?")
    out, err = capsys.readouterr()
    assert reply.thinking.strip() == "First, the sky."
    assert out == "It is sunny.\n"
    assert "Thinking...\nFirst, the sky." in err and "...done thinking." in err
