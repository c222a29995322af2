"""The errors mlxctl raises on purpose.

    MlxctlError            one clear line for the user, plus the next step (`hint`)   503
    ├── InvalidInput       bad argument, file or value: nothing was changed           400
    ├── NotFound           an unknown model, file or key                              404
    ├── Conflict           the change collides with existing state (taken port, slug) 409
    ├── Forbidden          allowed locally, not for this caller (a setting opens it)  403
    └── Unavailable        something needed is not there (daemon down, no MLX)        503

The CLI prints `error: <message>` and the hint, exits non-zero, and prints a
traceback only when MLXCTL_DEBUG=1. Over HTTP each class answers its own `status`,
`code` and `param`, with `Retry-After` when `retry_after` is set: subclasses elsewhere
(the scheduler's, the engine's) say theirs, and `openai_error.to_api_error`, the one
mapping of the daemon and the worker, reads them.
"""

from __future__ import annotations

import math


class MlxctlError(Exception):
    exit_code = 1
    status = 503
    code = "unavailable"
    param: str | None = None
    retry_after: float | None = 5.0  # seconds; None: retrying cannot help

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  {self.hint}"

    def headers(self) -> dict[str, str]:
        """`Retry-After` in whole seconds (at least 1) when retrying can help."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class InvalidInput(MlxctlError):
    exit_code = 2
    status, code, retry_after = 400, "invalid_value", None


class NotFound(MlxctlError):
    exit_code = 3
    status, code, param, retry_after = 404, "model_not_found", "model", None


class Conflict(MlxctlError):
    exit_code = 4
    status, code, retry_after = 409, "conflict", None


class Forbidden(MlxctlError):
    exit_code = 6
    status, code, retry_after = 403, "forbidden", None


class Unavailable(MlxctlError):
    exit_code = 5

    def __init__(
        self, message: str, hint: str | None = None, *, retry_after: float | None = 5.0
    ) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after
