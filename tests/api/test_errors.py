"""One OpenAI envelope: the daemon's errors have exactly the worker's shape."""

from __future__ import annotations

import json

import pytest

from mlxctl.api.errors import APIError, error_body, error_event, to_api_error
from mlxctl.errors import Conflict, InvalidInput, NotFound, Unavailable
from mlxctl.scheduler import Busy, CannotFit, LoadFailed, ShuttingDown, WorkerLost


def test_same_envelope_as_the_worker() -> None:
    from mlxctl import openai_error
    from mlxctl.worker import openai_errors

    # One envelope for the dialect: both sides build bodies with the same function.
    assert error_body is openai_error.error_body is openai_errors.error_body
    assert APIError is openai_errors.APIError


@pytest.mark.parametrize(
    ("exc", "status", "code", "retry_after"),
    [
        (Busy("full", retry_after=2.2), 429, "queue_full", "3"),
        (CannotFit("too big", retry_after=60), 503, "memory_budget", "60"),
        (LoadFailed("broken", retry_after=0.2), 503, "load_failed", "1"),
        (ShuttingDown("bye", retry_after=5), 503, "shutting_down", "5"),
        (WorkerLost("gone"), 502, "worker_lost", None),
        (NotFound("no such model", hint="did you mean: a?"), 404, "model_not_found", None),
        (InvalidInput("bad"), 400, "invalid_value", None),
        (Conflict("taken"), 409, "conflict", None),
        (Unavailable("down"), 503, "unavailable", "5"),
        (RuntimeError("boom"), 500, "internal_error", None),
    ],
)
def test_every_error_maps_to_a_status_and_code(
    exc: Exception, status: int, code: str, retry_after: str | None
) -> None:
    error = to_api_error(exc)
    assert (error.status, error.code) == (status, code)
    assert error.headers.get("Retry-After") == retry_after
    body = error.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == {429: "rate_limit_error", 404: "not_found_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )


def test_not_found_carries_the_hint_in_the_message() -> None:
    body = to_api_error(NotFound("model 'x' is not registered", hint="did you mean: y?")).body()
    assert body["error"]["message"] == "model 'x' is not registered (did you mean: y?)"
    assert body["error"]["param"] == "model"


def test_after_the_first_byte_an_error_is_one_final_sse_event() -> None:
    event = error_event(WorkerLost("the worker for 'a' stopped mid-stream"))
    assert event.startswith(b"data: {") and event.endswith(b"}\n\n")
    assert (
        json.loads(event[6:])
        == APIError(502, "the worker for 'a' stopped mid-stream", code="worker_lost").body()
    )


def test_operation_arguments_a_handler_builds_are_a_400_not_a_500() -> None:
    # Found by the fuzz run: /api/copy with `"destination": "\f"` built CopyArgs and
    # pydantic's ValidationError escaped as a 500.
    from pydantic import ValidationError

    from mlxctl.operations.store import CopyArgs

    with pytest.raises(ValidationError) as caught:
        CopyArgs(source="tiny", target="\f")
    error = to_api_error(caught.value)
    assert (error.status, error.param, error.code) == (400, "target", "invalid_value")
