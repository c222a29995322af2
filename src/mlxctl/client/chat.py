"""One chat turn against the daemon, streamed over Ollama's `/api/chat`.

`mlxctl run` and `mlxctl bench` both use it: the NDJSON stream gives the text as
it comes and, in its last line, the daemon's own measurements (load, prompt
evaluation and decode durations and counts). `Reply` adds what only the client
sees: when the first token arrived.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlxctl.client.daemon import LOAD_TIMEOUT, DaemonClient, error_from, talking
from mlxctl.errors import Unavailable

__all__ = ["Reply", "chat"]

Sink = Callable[[str], None]


@dataclass
class Reply:
    """What one turn produced; durations in seconds (the daemon reports nanoseconds)."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str | None = None
    first_token_s: float | None = None  # client-side: request sent → first text
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)  # the final line's counts/durations

    def seconds(self, name: str) -> float:
        return float(self.stats.get(name) or 0) / 1e9

    def rate(self, count: str, duration: str) -> float | None:
        """Tokens per second from the daemon's counts, None when it measured no time."""
        seconds = self.seconds(duration)
        return float(self.stats.get(count) or 0) / seconds if seconds > 0 else None


def chat(
    client: DaemonClient,
    body: dict[str, Any],
    *,
    on_content: Sink | None = None,
    on_thinking: Sink | None = None,
) -> Reply:
    """Send `body` to `/api/chat` streamed; pieces go to the sinks as they arrive.

    Errors, before or during the stream, raise the matching `MlxctlError`. Closing
    early (KeyboardInterrupt in a sink) closes the stream, which cancels the reply.
    """
    reply = Reply()
    started = time.perf_counter()
    with talking(client.base_url):
        for line in _lines(client, {**body, "stream": True}):
            message = line.get("message") or {}
            content, thinking = message.get("content") or "", message.get("thinking") or ""
            if (content or thinking) and reply.first_token_s is None:
                reply.first_token_s = time.perf_counter() - started
            if thinking:
                reply.thinking += thinking
                if on_thinking is not None:
                    on_thinking(thinking)
            if content:
                reply.content += content
                if on_content is not None:
                    on_content(content)
            reply.tool_calls.extend(message.get("tool_calls") or [])
            if line.get("done"):
                reply.done_reason = line.get("done_reason")
                reply.stats = {k: v for k, v in line.items() if k.endswith(("_count", "_duration"))}
    reply.wall_s = time.perf_counter() - started
    if reply.done_reason is None:
        raise Unavailable("the daemon ended the reply without its final line")
    return reply


def _lines(client: DaemonClient, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with client.http.stream("POST", "/api/chat", json=body, timeout=LOAD_TIMEOUT) as response:
        if response.status_code >= 400:
            response.read()
            raise error_from(response)
        for raw in response.iter_lines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            if "error" in line:
                raise Unavailable(f"the reply failed: {line['error']}")
            yield line
