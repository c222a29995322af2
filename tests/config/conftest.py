"""The daemon fixtures of tests/api, for the config tests that run a real daemon."""

from tests.api.conftest import register, start_daemon, tiny_models

__all__ = ["register", "start_daemon", "tiny_models"]
