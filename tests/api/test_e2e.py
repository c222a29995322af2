"""End to end: a real `mlxctl serve`, real workers on tiny factory models, the openai client."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlxctl.registry import ModelRecord
from tests.api.conftest import Daemon, StartDaemon, real_worker_command

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Say something."}]
LONG = {"mlxctl_test_force": "hello world " * 300}  # ~600 tokens, a second or more
Register = Callable[..., ModelRecord]
MakeClient = Callable[[Daemon], openai.OpenAI]


@pytest.fixture
def real_env() -> dict[str, str]:
    return {"MLXCTL_WORKER_COMMAND": real_worker_command(), "MLXCTL_WORKER_TEST_HOOKS": "1"}


@pytest.fixture
def models(register: Register, tiny_models: dict[str, Path]) -> dict[str, ModelRecord]:
    return {
        "q": register("q", tiny_models["qwen2"]),
        "l": register("l", tiny_models["llama"]),
    }


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    clients: list[openai.OpenAI] = []

    def make(daemon: Daemon) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=daemon.url + "/v1", api_key=daemon.api_key or "unused", max_retries=0
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_on_demand_two_models_options_and_metrics(
    start_daemon: StartDaemon, models: Any, real_env: dict[str, str], make_client: MakeClient
) -> None:
    # Prompt lookup on for every model: its counters reach /v1/worker/stats and /metrics.
    daemon = start_daemon({**real_env, "MLXCTL_WORKER_PROMPT_LOOKUP": "1"})
    client = make_client(daemon)
    assert daemon.ps() == {}
    reply = client.chat.completions.create(model="q", messages=MESSAGES, max_tokens=5)
    repeat = [{"role": "user", "content": "Say it again: one two three. " * 4}]
    client.chat.completions.create(model="q", messages=repeat, max_tokens=40, temperature=0)
    assert reply.model == "q" and reply.usage is not None and reply.usage.completion_tokens <= 5
    pid = daemon.ps()["q"]["pid"]
    # Other sampling options and keep_alive: the same worker, no reload.
    stream = client.chat.completions.create(
        model="q",
        messages=MESSAGES,
        max_tokens=8,
        temperature=0.3,
        top_p=0.9,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"keep_alive": "10m"},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 8
    row = daemon.ps()["q"]
    assert row["pid"] == pid and row["keep_alive"] == 600 and row["requests_total"] == 3
    # A second model loads beside the first; both serve at once.
    with ThreadPoolExecutor(2) as pool:
        text = pool.submit(client.completions.create, model="l", prompt="Hi", max_tokens=5)
        chat = pool.submit(
            client.chat.completions.create, model="q", messages=MESSAGES, max_tokens=5
        )
        assert text.result().model == "l" and chat.result().model == "q"
    ps = daemon.ps()
    assert {m: r["state"] for m, r in ps.items()} == {"q": "ready", "l": "ready"}
    assert ps["q"]["pid"] == pid and ps["l"]["measured"]["rss_bytes"] > 0
    models = {m.id: m.model_dump() for m in client.models.list()}
    assert list(models) == ["l", "q"]
    assert {"chat", "tools", "reasoning"} <= set(models["q"]["capabilities"])
    assert models["q"]["context_length"] > 0
    with pytest.raises(openai.NotFoundError, match="did you mean"):
        client.chat.completions.create(model="qq", messages=MESSAGES)
    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(daemon.url + "/metrics").text)
    }
    for name in (
        "mlxctl_requests",
        "mlxctl_time_to_first_token_seconds",
        "mlxctl_request_duration_seconds",
        "mlxctl_loaded_models",
        "mlxctl_model_memory_bytes",
        "mlxctl_queue_depth",
        "mlxctl_generated_tokens",
        "mlxctl_prompt_tokens",
        "mlxctl_prompt_cache_hits",
        "mlxctl_draft_tokens",
        "mlxctl_draft_accepted_tokens",
        "mlxctl_model_loads",
        "mlxctl_model_unloads",
    ):
        assert name in families, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples["mlxctl_loaded_models", ()] == 2
    assert samples["mlxctl_model_loads_total", (("model", "q"), ("result", "ok"))] == 1
    assert samples["mlxctl_generated_tokens_total", (("model", "q"),)] > 0
    drafted = samples["mlxctl_draft_tokens_total", (("model", "q"),)]
    assert drafted > 0
    assert 0 <= samples["mlxctl_draft_accepted_tokens_total", (("model", "q"),)] <= drafted


def test_keep_alive_expiry_zero_and_forever(
    start_daemon: StartDaemon, models: Any, real_env: dict[str, str], make_client: MakeClient
) -> None:
    daemon = start_daemon({**real_env, "MLXCTL_KEEP_ALIVE": "1s"})
    client = make_client(daemon)
    client.chat.completions.create(model="q", messages=MESSAGES, max_tokens=2)
    pid = daemon.ps()["q"]["pid"]
    wait_for(lambda: daemon.ps() == {}, timeout=10)
    assert not alive(pid)
    client.chat.completions.create(
        model="q", messages=MESSAGES, max_tokens=2, extra_body={"keep_alive": 0}
    )
    wait_for(lambda: daemon.ps() == {}, timeout=5)
    client.chat.completions.create(
        model="q", messages=MESSAGES, max_tokens=2, extra_body={"keep_alive": -1}
    )
    time.sleep(1.5)
    row = daemon.ps()["q"]
    assert row["state"] == "ready" and row["keep_alive"] is None and row["expires_in"] is None
    reasons = httpx.get(daemon.url + "/metrics").text
    assert 'mlxctl_model_unloads_total{model="q",reason="expired"} 1.0' in reasons
    assert 'mlxctl_model_unloads_total{model="q",reason="keep_alive=0"} 1.0' in reasons


def test_eviction_order_under_a_small_budget_and_503_when_it_cannot_fit(
    start_daemon: StartDaemon,
    models: dict[str, ModelRecord],
    register: Register,
    tiny_models: dict[str, Path],
    real_env: dict[str, str],
    make_client: MakeClient,
) -> None:
    register("q2", tiny_models["qwen2"])
    register("huge", size_bytes=50_000_000_000)
    env = {**real_env, "MLXCTL_KV_CONTEXT": "256", "MLXCTL_WORKER_MAX_BATCH": "2"}
    # Room for two tiny models, not three.
    estimate = {slug: r.size_bytes + 512 * 256 * 2 for slug, r in models.items()}  # type: ignore[operator]
    budget = estimate["q"] + estimate["l"] + 100_000
    daemon = start_daemon({**env, "MLXCTL_MEMORY_BUDGET": str(budget)})
    client = make_client(daemon)
    for model in ("q", "l", "q"):  # q is now the most recently used
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=2)
    l_pid = daemon.ps()["l"]["pid"]
    client.chat.completions.create(model="q2", messages=MESSAGES, max_tokens=2)
    assert set(daemon.ps()) == {"q", "q2"}
    assert not alive(l_pid)
    unloads = [line["msg"] for line in daemon.logs() if "unloading" in str(line.get("msg"))]
    assert unloads == ["unloading l (evicted)"]
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="huge", messages=MESSAGES)
    error = info.value
    assert error.status_code == 503 and int(error.response.headers["retry-after"]) > 0
    assert "memory budget is" in error.message and "MLXCTL_MEMORY_BUDGET" in error.message
    assert set(daemon.ps()) == {"q", "q2"}  # nothing was evicted for a hopeless load


def test_kill_9_of_a_worker_mid_stream(
    start_daemon: StartDaemon, models: Any, real_env: dict[str, str], make_client: MakeClient
) -> None:
    daemon = start_daemon(real_env)
    client = make_client(daemon)
    stream = client.chat.completions.create(
        model="q", messages=MESSAGES, max_tokens=2000, stream=True, extra_body=LONG
    )
    pid = daemon.ps()["q"]["pid"]
    received = 0
    with pytest.raises(openai.APIError, match=r"stopped mid-stream.*SIGKILL"):
        for _ in stream:
            received += 1
            if received == 3:
                os.kill(pid, signal.SIGKILL)
    assert received >= 3
    assert daemon.proc.poll() is None
    reply = client.chat.completions.create(model="q", messages=MESSAGES, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert daemon.ps()["q"]["pid"] != pid


def test_a_full_queue_is_429_with_retry_after(
    start_daemon: StartDaemon, models: Any, real_env: dict[str, str], make_client: MakeClient
) -> None:
    daemon = start_daemon({**real_env, "MLXCTL_MAX_QUEUE": "1"})
    client = make_client(daemon)

    def ask(_: int) -> int:
        try:
            client.chat.completions.create(model="q", messages=MESSAGES, max_tokens=2)
        except openai.RateLimitError as e:
            assert int(e.response.headers["retry-after"]) >= 1
            return 429
        return 200

    with ThreadPoolExecutor(3) as pool:
        assert sorted(pool.map(ask, range(3))) == [200, 429, 429]


def test_api_key_with_the_openai_client(
    start_daemon: StartDaemon, models: Any, make_client: MakeClient
) -> None:
    daemon = start_daemon({"MLXCTL_API_KEY": "k3y"}, args=("--host", "0.0.0.0"))
    assert [m.id for m in make_client(daemon).models.list()] == ["l", "q"]
    daemon.api_key = None
    with pytest.raises(openai.AuthenticationError):
        make_client(daemon).models.list()


def test_graceful_shutdown_finishes_streams_and_stops_workers(
    start_daemon: StartDaemon, models: Any, real_env: dict[str, str]
) -> None:
    daemon = start_daemon(real_env)
    httpx.post(daemon.url + "/api/admin/load", json={"model": "q"}, timeout=60)
    pid = daemon.ps()["q"]["pid"]
    result: dict[str, bytes] = {}
    body = {"model": "q", "messages": MESSAGES, "max_tokens": 2000, "stream": True, **LONG}

    def stream() -> None:
        with httpx.stream("POST", daemon.url + "/v1/chat/completions", json=body, timeout=60) as r:
            result["body"] = r.read()

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(0.3)
    daemon.proc.send_signal(signal.SIGTERM)
    reader.join(30)
    assert result["body"].endswith(b"data: [DONE]\n\n")
    assert daemon.proc.wait(30) == 0
    assert not alive(pid)
