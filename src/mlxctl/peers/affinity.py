"""Conversation affinity: a conversation's next turn goes to the host holding its prefix
cache. The key is a hash of the request's leading part (system prompt and first user
message, or the prompt's first characters): what every turn of one conversation shares."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

# How much of a bare prompt counts as its start (a conversation's turns share it).
_PROMPT_CHARS = 1024


def prefix_key(model: str, body: dict[str, Any]) -> str | None:
    """The affinity key of a request body (any dialect), or None when it has no prompt."""
    lead: list[Any] = [model, body.get("system"), body.get("instructions")]
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = body.get("input") if isinstance(body.get("input"), list) else None
    if isinstance(messages, list):
        for message in messages:
            lead.append(message)
            if isinstance(message, dict) and message.get("role") == "user":
                break
    else:
        prompt = body.get("prompt", body.get("input"))
        if not isinstance(prompt, str):
            return None
        lead.append(prompt[:_PROMPT_CHARS])
    text = json.dumps(lead, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Affinity:
    """Key → the host that last answered it; the least recently used forgotten first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._hosts: OrderedDict[str, str] = OrderedDict()

    def host(self, key: str | None) -> str | None:
        if key is None or key not in self._hosts:
            return None
        self._hosts.move_to_end(key)
        return self._hosts[key]

    def remember(self, key: str | None, host: str) -> None:
        if key is None:
            return
        self._hosts[key] = host
        self._hosts.move_to_end(key)
        while len(self._hosts) > self.size:
            self._hosts.popitem(last=False)
