"""The client talks to a real daemon: reuse the daemon fixtures of tests/api."""

from tests.api.conftest import register, start_daemon

__all__ = ["register", "start_daemon"]
