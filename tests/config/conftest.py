"""The per-test daemon fixtures of tests/api (the shared daemon is tests/config/daemon.py)."""

from tests.api.conftest import register, start_daemon

__all__ = ["register", "start_daemon"]
