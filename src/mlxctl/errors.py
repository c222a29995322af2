"""The errors mlxctl raises on purpose.

    MlxctlError            one clear line for the user, plus the next step (`hint`)
    ├── InvalidInput       bad argument, file or value: nothing was changed
    ├── NotFound           an unknown model, file or key
    ├── Conflict           the change collides with existing state (taken port, slug)
    ├── Forbidden          allowed locally, not for this caller (a setting opens it)
    └── Unavailable        something needed is not there (daemon down, no MLX)

The CLI prints `error: <message>` and the hint, exits non-zero, and prints a
traceback only when MLXCTL_DEBUG=1.
"""

from __future__ import annotations


class MlxctlError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  {self.hint}"


class InvalidInput(MlxctlError):
    exit_code = 2


class NotFound(MlxctlError):
    exit_code = 3


class Conflict(MlxctlError):
    exit_code = 4


class Forbidden(MlxctlError):
    exit_code = 6


class Unavailable(MlxctlError):
    exit_code = 5
