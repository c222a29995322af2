"""How long transfers report progress, without knowing who draws it.

The store calls a `Progress` sink with byte counts per item (a blob, a file of
a Hugging Face download); the CLI implements it with a rich progress bar and
tests with a recorder. Sinks may be called from several threads at once.
"""

from __future__ import annotations

from typing import Protocol


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
