"""The sharded tests drive a real daemon (tests/api fixtures)."""

from tests.api.conftest import register, start_daemon, tiny_models

__all__ = ["register", "start_daemon", "tiny_models"]
