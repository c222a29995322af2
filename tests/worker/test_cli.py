"""`mlxctl worker` as a real process: audit line, port 0, graceful SIGTERM, load failure."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlxctl.cli.worker import resolve_model
from mlxctl.engine.generator import default_prefill_step
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.library import catalog
from mlxctl.registry import ModelRecord, open_registry


class Proc:
    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mlxctl.cli.main", "worker", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.put(line)

    def event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """The first JSON stderr line whose `event` is `name`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.popen.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if line.startswith("{") and json.loads(line).get("event") == name:
                return dict(json.loads(line))
        raise AssertionError(f"no {name} line; stderr so far:\n{''.join(self.seen)}")

    def drain(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self.reader.join(timeout=10)
        assert self.popen.stderr is not None
        self.popen.stderr.close()


def test_worker_process_serves_and_stops_gracefully(model_path: Path) -> None:
    proc = Proc(
        *(str(model_path), "--port", "0", "--max-batch", "3", "--prompt-cache-bytes", "64MiB"),
        *("--preset", "fast"),
        *("--draft-model", str(model_path), "--num-draft-tokens", "2"),  # itself as its draft
    )
    try:
        listening = proc.event("worker.listening")
        audit = proc.event("worker.ready")
        url = f"http://127.0.0.1:{listening['port']}"
        assert audit["listen"]["port"] == listening["port"] != 0
        assert audit["model"]["path"] == str(model_path)
        assert audit["model"]["id"] == model_path.name
        assert audit["chat_template"] == "tokenizer"
        assert audit["tool_call_parser"] == "json_tools"
        assert audit["reasoning_parser"] == "think"
        batch = {"max_batch": 3, "max_queue": 64, "prefill_step_size": default_prefill_step()}
        assert audit["batch"] == batch  # the device's chunk (512 on the CPU)
        assert audit["prompt_cache"]["prompt_cache_bytes"] == 64 << 20
        assert set(audit["versions"]) >= {"mlxctl", "mlx", "mlx-lm", "llguidance"}
        assert audit["test_hooks"] is False
        assert audit["preset"] == "fast"  # the config.yaml preset the daemon started it with
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
            timeout=30,
        )
        assert reply.status_code == 200
        assert audit["speculation"] == {
            "draft_model": str(model_path),
            "prompt_lookup": False,
            "num_draft_tokens": 2,
            "off": None,  # it can speculate
        }
        stats = httpx.get(f"{url}/v1/worker/stats").json()
        assert stats["tokens_drafted_total"] >= stats["tokens_draft_accepted_total"] > 0
        # Without MLXCTL_WORKER_TEST_HOOKS the forcing field is an unknown field.
        forced = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "mlxctl_test_force": "x"},
        )
        assert forced.status_code == 400
        proc.popen.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the parent sees it.
        assert proc.popen.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in proc.drain()
    finally:
        proc.kill()


def test_worker_exits_non_zero_when_the_model_cannot_load(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    proc = Proc(str(empty), "--port", "0")
    try:
        assert proc.popen.wait(timeout=60) != 0
        assert "failed to load" in proc.drain()
    finally:
        proc.kill()


def test_resolve_by_path_and_by_registry_name(model_path: Path, tmp_path: Path) -> None:
    assert resolve_model(str(model_path)).id == model_path.name
    text = tmp_path / "t.jinja"
    text.write_text("{{ messages }}")
    template = catalog.open_store().keep_template(text)  # as `registry set` keeps one
    registry = open_registry()
    try:
        registry.add(
            ModelRecord(
                slug="tiny-chat",
                cache_path=str(model_path),
                repo_id="mlxctl-factory/tiny-chat",
                chat_template=str(template),
                tool_call_parser="json_tools",
                reasoning_parser="none",
            )
        )
    finally:
        registry.db.close()
    info = resolve_model("tiny-chat")
    assert (info.id, info.path, info.repo_id) == (
        "tiny-chat",
        model_path,
        "mlxctl-factory/tiny-chat",
    )
    assert (info.chat_template, info.tool_call_parser, info.reasoning_parser) == (
        str(template),
        "json_tools",
        "none",
    )
    with pytest.raises(NotFound):
        resolve_model("no-such-model")


def test_a_registry_template_outside_the_store_is_never_read(
    model_path: Path, isolated_home: Path
) -> None:
    secret = isolated_home / "auth.json"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text('{"auths": {"ghcr.io": {"auth": "c2VjcmV0"}}}')
    registry = open_registry()
    try:
        registry.add(ModelRecord(slug="m", cache_path=str(model_path), chat_template=str(secret)))
    finally:
        registry.db.close()
    with pytest.raises(InvalidInput) as refused:
        resolve_model("m")
    assert "outside the model store" in refused.value.message


def test_a_folder_named_like_a_slug_never_replaces_the_registered_model(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_registry()
    try:
        registry.add(ModelRecord(slug="qwen", cache_path=str(model_path)))
    finally:
        registry.db.close()
    decoy = tmp_path / "cwd" / "qwen"
    shutil.copytree(model_path, decoy)
    (tmp_path / "cwd" / "loose").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_model("qwen").path == model_path  # the registry wins
    assert resolve_model("./qwen").path == decoy.resolve()  # a path when written as one
    with pytest.raises(NotFound) as info:
        resolve_model("loose")  # a bare name is never a folder of the cwd
    assert info.value.hint is not None and "./loose" in info.value.hint
