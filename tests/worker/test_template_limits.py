"""Chat templates within time and size limits, on real workers: a hostile template gets a
clear 400 within MLXCTL_TEMPLATE_TIMEOUT and the worker keeps serving."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mlxctl.settings import Settings
from mlxctl.worker.app import ServedModel
from tests.worker.conftest import Running, engine_loader, serve

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
# Nested loops with nothing to output: ~1e10 steps, minutes of CPU if nobody stops them.
SPIN = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


def settings(**values: Any) -> Settings:
    return dataclasses.replace(Settings.from_env(), **values)


@pytest.fixture(scope="module")
def open_templates(model_path: Path) -> Iterator[Running]:
    running = serve(
        ServedModel(id="open", path=model_path),
        engine_loader(model_path, max_batch=2, max_queue=4),
        settings=settings(allow_client_templates=True, template_timeout=2.0),
    )
    yield running
    running.stop()


def test_a_client_template_is_used_when_allowed(open_templates: Running, tokenizer: Any) -> None:
    template = "{% for m in messages %}{{ m.content }}{% endfor %} and then"
    reply = httpx.post(
        open_templates.url + CHAT,
        json={"messages": HI, "max_tokens": 1, "chat_template_kwargs": {"chat_template": template}},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    expected = len(tokenizer.encode("hi and then", add_special_tokens=False))
    assert reply.json()["usage"]["prompt_tokens"] == expected


@pytest.mark.parametrize("template", [SPIN, "{{ 'x' * 10**10 }}"])
def test_a_hostile_client_template_is_a_400_and_the_worker_lives(
    open_templates: Running, template: str
) -> None:
    started = time.monotonic()
    reply = httpx.post(
        open_templates.url + CHAT,
        json={"messages": HI, "chat_template_kwargs": {"chat_template": template}},
        timeout=60,
    )
    assert time.monotonic() - started < 2.0 + 2.0
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "chat_template_kwargs.chat_template"
    assert "MLXCTL_TEMPLATE_TIMEOUT" in error["message"] or "memory" in error["message"]
    after = httpx.post(open_templates.url + CHAT, json={"messages": HI, "max_tokens": 2})
    assert after.status_code == 200


def test_a_slow_model_template_is_a_400_within_the_limit(model_path: Path, tmp_path: Path) -> None:
    # Loops sized on this machine to take about four seconds: past the deadline (limit + 1 s
    # margin) on a fast box too, and the abandoned render thread ends soon after.
    outer = _outer_loops_for(4.0)
    slow = tmp_path / "slow.jinja"
    slow.write_text(
        f"{{% for a in range({outer}) %}}{{% for b in range(1000) %}}{{% endfor %}}{{% endfor %}}"
        "{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    running = serve(
        ServedModel(id="slow", path=model_path, chat_template=str(slow)),
        engine_loader(model_path, max_batch=1, max_queue=2),
        settings=settings(template_timeout=0.5),
    )
    try:
        started = time.monotonic()
        reply = httpx.post(running.url + CHAT, json={"messages": HI}, timeout=60)
        # Generous slack: on a loaded 2-core CI box the render thread competes for the GIL.
        assert time.monotonic() - started < 0.5 + 3.5
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "template_timeout"
        assert httpx.get(running.url + "/health").json()["status"] == "ok"
    finally:
        running.stop()


def _outer_loops_for(seconds: float) -> int:
    """How many outer loops of 1,000 make a render of about `seconds` here (the sandbox's
    range is capped at 100,000)."""
    sample = ImmutableSandboxedEnvironment().from_string(
        "{% for a in range(500) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"
    )
    started = time.perf_counter()
    sample.render()
    per_loop = (time.perf_counter() - started) / 500
    return max(1000, min(100_000, int(seconds / per_loop)))
