"""The Responses API's conversation state: stored responses, bounded and expiring.

A stored response keeps its response object, its own input items, and the whole
conversation up to its output (`history`), so `previous_response_id` continues it
without the client sending it again. The store holds at most `max_entries`
responses (the least recently used goes first) and forgets each `ttl` seconds
after it was last used; it lives in the daemon's memory only (a restart forgets it).
Runs on the event loop; no locks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlxctl.api.errors import APIError
from mlxctl.settings import Settings

Item = dict[str, Any]


@dataclass
class Stored:
    response: dict[str, Any]
    input_items: list[Item]
    history: list[Item]  # every item of the conversation, this response's output last
    expires: float = 0.0


class ResponseStore:
    def __init__(
        self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, Stored] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> ResponseStore:
        return cls(settings.responses_max, settings.responses_ttl)

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def put(self, response_id: str, stored: Stored) -> None:
        if self.max_entries <= 0:
            return
        stored.expires = self._clock() + self.ttl
        self._entries[response_id] = stored
        self._entries.move_to_end(response_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._expire()

    def get(self, response_id: str, param: str = "response_id") -> Stored:
        """The stored response, its lifetime renewed; a 404 in OpenAI's envelope if absent."""
        self._expire()
        stored = self._entries.get(response_id)
        if stored is None:
            raise not_found(response_id, param)
        stored.expires = self._clock() + self.ttl
        self._entries.move_to_end(response_id)
        return stored

    def delete(self, response_id: str) -> None:
        self._expire()
        if self._entries.pop(response_id, None) is None:
            raise not_found(response_id, "response_id")

    def _expire(self) -> None:
        # Least recently used first, so the expired ones are at the front.
        now = self._clock()
        while self._entries and next(iter(self._entries.values())).expires <= now:
            self._entries.popitem(last=False)


def not_found(response_id: str, param: str) -> APIError:
    return APIError(
        404,
        f"Response with id '{response_id}' not found. The daemon keeps responses made with "
        "store=true for MLXCTL_RESPONSES_TTL seconds (at most MLXCTL_RESPONSES_MAX of them).",
        param=param,
        code="response_not_found",
    )
