"""The real daemon for the MCP tests, as the API tests start it."""

from tests.api.conftest import start_daemon

__all__ = ["start_daemon"]
