"""A model sharded over 2 ranks on loopback (ring backend), served through a real daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openai
import psutil
import pytest

from mlxctl.registry import ModelRecord
from tests.api.conftest import Daemon, StartDaemon, mlx_lm_server_env

Register = Callable[..., ModelRecord]
LOCAL_PAIR = "{host: 127.0.0.1, ranks: 2}"
CONFIG = f"""
presets:
  lookup:
    prompt_lookup: true
models:
  duo:
    shard:
      hosts: [{LOCAL_PAIR}]
  duo-spec:
    preset: lookup           # one layer alone is refused by the file's check
    shard:
      hosts: [127.0.0.1, 127.0.0.1]
  duo-tight:
    shard:
      mode: pipeline
      hosts:
        - {{host: 127.0.0.1, memory: 1000}}
        - 127.0.0.1
"""


@pytest.fixture
def daemon(
    start_daemon: StartDaemon,
    register: Register,
    tiny_models: dict[str, Path],
    isolated_home: Path,
    tmp_path: Path,
) -> Daemon:
    for slug in ("solo", "duo", "duo-spec", "duo-tight"):
        register(slug, tiny_models["qwen2"])
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.yaml").write_text(CONFIG)
    return start_daemon(mlx_lm_server_env(tmp_path))


def client_of(daemon: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key="unused", max_retries=0)


def ranks_of(leader: int) -> dict[int, psutil.Process]:
    """The rank processes `mlx.launch` (pid `leader`) runs, by rank."""
    found = {}
    for child in psutil.Process(leader).children(recursive=True):
        try:
            if "mlx_lm" in child.cmdline():
                found[int(child.environ()["MLX_RANK"])] = child
        except (psutil.Error, KeyError):
            continue
    return found


def wait_for(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_refusals_then_two_ranks_like_one_process_unload_and_a_killed_rank(
    daemon: Daemon,
) -> None:
    """One daemon for all (each load of 2 ranks costs seconds on this box)."""
    refused_before_any_load(daemon)
    ranks = answers_like_one_process_and_unload_stops_every_rank(daemon)
    assert not any(p.is_running() for p in ranks.values())
    sharded_at_load_by_the_cli(daemon)
    a_killed_rank_ends_the_stream_with_an_error_and_the_model_failed(daemon, "solo")
    # The placement `load --hosts` gave lasts until unload.
    assert daemon.client().post("/api/admin/unload", json={"model": "solo"}).status_code == 200
    assert daemon.ps()["solo"]["options"]["shard"] is None  # the failed row, cooling down


def refused_before_any_load(daemon: Daemon) -> None:
    http = daemon.client()
    messages = [{"role": "user", "content": "Hi"}]
    schema = {"name": "x", "schema": {"type": "object"}}
    response_format = {"type": "json_schema", "json_schema": schema}
    body = {"model": "duo", "messages": messages, "response_format": response_format}
    refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "structured output" in error["message"] and error["param"] == "response_format"

    spec = http.post("/v1/chat/completions", json={"model": "duo-spec", "messages": messages})
    assert spec.status_code == 400
    assert "prompt lookup (prompt_lookup)" in spec.json()["error"]["message"]

    tight = http.post("/api/admin/load", json={"model": "duo-tight"})
    assert tight.status_code == 400
    message = tight.json()["error"]["message"]
    assert "does not fit host '127.0.0.1'" in message and "its budget is 1.0 KB" in message
    assert daemon.ps() == {}  # nothing was started for any of them


def answers_like_one_process_and_unload_stops_every_rank(
    daemon: Daemon,
) -> dict[int, psutil.Process]:
    client = client_of(daemon)
    greedy = {"prompt": "The quick brown fox", "max_tokens": 16, "temperature": 0}
    solo = client.completions.create(model="solo", **greedy)  # type: ignore[call-overload]
    duo = client.completions.create(model="duo", **greedy)  # type: ignore[call-overload]
    assert duo.usage is not None and duo.usage.completion_tokens == 16
    assert duo.choices[0].text == solo.choices[0].text

    row = daemon.ps()["duo"]
    assert row["state"] == "ready"
    ranks = ranks_of(row["pid"])
    assert sorted(ranks) == [0, 1]
    assert all(os.getpgid(p.pid) == row["pid"] for p in ranks.values())

    # Unload stops every rank: nothing of the group is left.
    assert daemon.client().post("/api/admin/unload", json={"model": "duo"}).status_code == 200
    assert wait_for(lambda: "duo" not in daemon.ps())
    assert wait_for(lambda: not any(p.is_running() for p in ranks.values()), 10)
    with pytest.raises(ProcessLookupError):
        os.killpg(row["pid"], 0)
    return ranks


def sharded_at_load_by_the_cli(daemon: Daemon) -> None:
    """`mlxctl load solo --hosts ...`: the unsharded worker is replaced by 2 ranks."""
    cli = [sys.executable, "-m", "mlxctl.cli.main", "load", "solo", "--json"]
    cli += ["--hosts", "127.0.0.1,127.0.0.1", "--pipeline"]
    env = {**os.environ, "MLXCTL_HOST": daemon.url}
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["state"] == "ready" and row["options"]["shard"]["mode"] == "pipeline"
    assert sorted(ranks_of(row["pid"])) == [0, 1]

    bad = [*cli[:-3], "--hosts", "mini.local,127.0.0.1"]
    refused = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "shard.hosts: " not in refused.stderr and "must be this machine" in refused.stderr


def a_killed_rank_ends_the_stream_with_an_error_and_the_model_failed(
    daemon: Daemon, model: str
) -> None:
    client = client_of(daemon)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4000,
        temperature=0,
        stream=True,
    )
    chunks = iter(stream)
    next(chunks)
    leader = daemon.ps()[model]["pid"]
    ranks = ranks_of(leader)
    started = time.monotonic()
    ranks[1].send_signal(signal.SIGKILL)
    with pytest.raises(openai.APIError) as broken:
        for _ in chunks:
            pass
    assert model in str(broken.value.message)
    assert time.monotonic() - started < 10

    assert wait_for(lambda: daemon.ps().get(model, {}).get("state") == "failed", 10)
    assert "rank 1 was killed by SIGKILL" in daemon.ps()[model]["reason"]
    assert wait_for(lambda: not any(p.is_running() for p in ranks.values()), 10)
    assert daemon.proc.poll() is None
    with pytest.raises(openai.APIStatusError) as cooling:
        client.completions.create(model=model, prompt="x", max_tokens=2)
    assert cooling.value.status_code == 503
