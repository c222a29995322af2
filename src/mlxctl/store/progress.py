"""How long transfers report progress, without knowing who draws it.

The store calls a `Progress` sink with byte counts per item (a blob, a file of
a Hugging Face download); the CLI implements it with a rich progress bar and
tests with a recorder. Sinks may be called from several threads at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        """A new item: `done` bytes are already there (a resumed download)."""

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        """`done` bytes of the item are now there (absolute, not a delta)."""

    def finish(self, key: str, note: str = "") -> None:
        """The item is complete; `note` says how (downloaded, skipped, mounted...)."""


class NoProgress:
    """The sink for callers that do not show progress."""

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        return None

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        return None

    def finish(self, key: str, note: str = "") -> None:
        return None


class EventSink:
    """A `Progress` that hands each call to `emit` as one plain JSON-able event.

    The daemon streams these events to a remote CLI (one NDJSON line each), which
    `replay`s them into its own sink: the same bars as a local run.
    """

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        self.emit({"progress": "start", "key": key, "label": label, "total": total, "done": done})

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        self.emit({"progress": "advance", "key": key, "done": done, "total": total})

    def finish(self, key: str, note: str = "") -> None:
        self.emit({"progress": "finish", "key": key, "note": note})


def replay(event: dict[str, Any], sink: Progress) -> bool:
    """Call `sink` as the `EventSink` that made `event` was called; False: not an event."""
    kind, key = event.get("progress"), str(event.get("key", ""))
    if kind == "start":
        sink.start(key, str(event.get("label") or key), event.get("total"), event.get("done") or 0)
    elif kind == "advance":
        sink.advance(key, int(event.get("done") or 0), event.get("total"))
    elif kind == "finish":
        sink.finish(key, str(event.get("note") or ""))
    else:
        return False
    return True
