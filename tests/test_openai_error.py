"""One error mapping for the daemon and the worker, driven by the error classes."""

from __future__ import annotations

import pytest

from mlxctl import openai_error
from mlxctl.api import errors as daemon_errors
from mlxctl.api.anthropic.errors import error_response as anthropic_response
from mlxctl.api.ollama.errors import error_response as ollama_response
from mlxctl.engine.checks import ContextOverflow
from mlxctl.engine.host import QueueFull
from mlxctl.errors import Forbidden, InvalidInput, MlxctlError, Unavailable
from mlxctl.openai_error import to_api_error
from mlxctl.worker import openai_errors as worker_errors


def test_the_daemon_and_the_worker_share_one_mapping() -> None:
    assert daemon_errors.to_api_error is worker_errors.to_api_error is to_api_error
    assert daemon_errors.error_response is worker_errors.error_response


@pytest.mark.parametrize(
    ("exc", "status", "code", "param", "retry_after"),
    [
        (QueueFull(retry_after=2.2), 429, "queue_full", None, "3"),
        (ContextOverflow(5000, 4096), 400, "context_length_exceeded", "messages", None),
        (Forbidden("not from here"), 403, "forbidden", None, None),
        (Unavailable("busy", retry_after=1), 503, "unavailable", None, "1"),
    ],
)
def test_an_error_class_says_its_status_and_code(
    exc: MlxctlError, status: int, code: str, param: str | None, retry_after: str | None
) -> None:
    error = to_api_error(exc)
    assert (error.status, error.code, error.param) == (status, code, param)
    assert error.headers.get("Retry-After") == retry_after


def test_the_context_overflow_message_names_both_sizes() -> None:
    message = to_api_error(ContextOverflow(5000, 4096)).message
    assert "maximum context length is 4096" in message and "5000" in message


def test_a_new_kind_of_error_needs_no_table() -> None:
    class Gone(InvalidInput):
        status, code = 410, "gone"

    error = to_api_error(Gone("it went", hint="pull it again"))
    assert (error.status, error.code, error.message) == (410, "gone", "it went (pull it again)")
    # Every dialect's envelope starts from the same mapping.
    assert ollama_response(Gone("x")).status_code == 410
    assert anthropic_response(Gone("x")).status_code == 410
    assert openai_error.error_response(Gone("x")).status_code == 410
