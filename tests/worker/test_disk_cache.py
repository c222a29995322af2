"""A real `mlxctl worker` restarted (kill -9) resumes a long prompt from its disk cache."""

from __future__ import annotations

import time
from pathlib import Path

import openai

from tests.worker.test_cli import Proc

PROMPT = "The quick brown fox jumps over the lazy dog while the cat watches. " * 30


def _ask(port: int) -> int:
    """Send the long prompt; the reply's cached prompt tokens."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": PROMPT}], max_tokens=4
        )
    finally:
        client.close()
    assert reply.usage is not None and reply.usage.prompt_tokens > 300
    details = reply.usage.prompt_tokens_details
    return details.cached_tokens or 0 if details is not None else 0


def test_a_restarted_worker_answers_a_repeated_long_prompt_from_disk(
    model_path: Path, isolated_home: Path
) -> None:
    flags = ("--port", "0", "--disk-cache-bytes", "64MiB", "--disk-cache-min-tokens", "64")
    first = Proc(str(model_path), *flags)
    try:
        port = first.event("worker.listening")["port"]
        audit = first.event("worker.ready")
        assert audit["kv_cache"]["disk_cache_bytes"] == 64 << 20
        assert _ask(port) == 0
        folder = isolated_home / "prompt-cache"
        # The write is off the generation thread: wait for the file to be renamed into place.
        deadline = time.monotonic() + 30
        while not list(folder.glob("*/*-*.safetensors")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(folder.glob("*/*-*.safetensors"))
    finally:
        first.kill()  # SIGKILL: nothing is flushed at exit
    second = Proc(str(model_path), *flags)
    try:
        port = second.event("worker.listening")["port"]
        second.event("worker.ready")
        assert _ask(port) > 300
    finally:
        second.kill()
