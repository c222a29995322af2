"""The Responses store: bounded by count, expiring after its TTL, 404s in OpenAI's envelope."""

from __future__ import annotations

import pytest

from mlxctl.api.errors import APIError
from mlxctl.api.openai.responses_store import ResponseStore, Stored


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _stored(text: str) -> Stored:
    return Stored({"id": text}, [], [])


def test_the_least_recently_used_goes_first() -> None:
    store = ResponseStore(2, 60, Clock())
    store.put("a", _stored("a"))
    store.put("b", _stored("b"))
    store.get("a")  # used: now b is the oldest
    store.put("c", _stored("c"))
    assert len(store) == 2 and store.get("a").response == {"id": "a"}
    with pytest.raises(APIError) as gone:
        store.get("b")
    assert gone.value.status == 404 and gone.value.code == "response_not_found"


def test_entries_expire_after_their_last_use() -> None:
    clock = Clock()
    store = ResponseStore(10, 60, clock)
    store.put("a", _stored("a"))
    store.put("b", _stored("b"))
    clock.now = 50
    store.get("a")  # renewed until 110
    clock.now = 100
    assert len(store) == 1
    with pytest.raises(APIError):
        store.get("b", "previous_response_id")
    clock.now = 111
    assert len(store) == 0


def test_zero_keeps_nothing_and_delete_of_a_missing_id_is_a_404() -> None:
    store = ResponseStore(0, 60, Clock())
    store.put("a", _stored("a"))
    assert len(store) == 0
    with pytest.raises(APIError) as missing:
        store.delete("a")
    assert missing.value.param == "response_id"
