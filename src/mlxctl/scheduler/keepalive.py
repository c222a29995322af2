"""keep_alive values: how long an idle model stays loaded.

Accepted as Ollama accepts them: a number of seconds (`300`, `0.5`), a duration
string (`30s`, `5m`, `1h30m`, `500ms`), `-1` or any negative value (forever),
`0` (unload as soon as the request ends). Parsed into seconds, None = forever.
A string must match `PATTERN` (the OpenAPI document publishes it).
"""

from __future__ import annotations

import math
import re

from mlxctl.errors import InvalidInput

FOREVER: None = None
# Longer than any machine stays up: forever (and no date arithmetic overflows later).
_FOREVER_AFTER = 100 * 365 * 86400.0
# ASCII digits only (Python's \d and float() also take other scripts' digits).
_NUMBER = r"[0-9]+(\.[0-9]+)?"
_UNIT = "[mM][sS]|[sSmMhH]"
PATTERN = rf"^[ \t]*-?({_NUMBER}|({_NUMBER}({_UNIT}))+)[ \t]*$"
_STRING = re.compile(PATTERN)
_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: object, *, param: str = "keep_alive") -> float | None:
    """Seconds an idle model stays loaded (None: until evicted); InvalidInput otherwise."""
    if isinstance(value, bool):
        raise _invalid(value, param)
    if isinstance(value, int | float):
        try:
            return _seconds(float(value), value, param)
        except OverflowError:  # an integer beyond any float: forever, as past _FOREVER_AFTER
            return FOREVER
    if isinstance(value, str) and _STRING.fullmatch(value):
        text = value.strip(" \t").lower()
        parts = _PART.findall(text)
        if not parts:
            return _seconds(float(text), value, param)
        total = sum(float(number) * _SCALE[unit] for number, _, unit in parts)
        return None if text.startswith("-") and total > 0 else _seconds(total, value, param)
    raise _invalid(value, param)


def format_keep_alive(seconds: float | None) -> str:
    """The inverse, for humans: `forever`, `0s`, `5m`, `1h30m`, `2.5s`."""
    if seconds is None:
        return "forever"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def _seconds(number: float, raw: object, param: str) -> float | None:
    if not math.isfinite(number):
        raise _invalid(raw, param)
    return None if number < 0 or number > _FOREVER_AFTER else number


def _invalid(value: object, param: str) -> InvalidInput:
    return InvalidInput(
        f"'{param}' must be seconds or a duration like 30s, 5m, 1h (-1: forever, 0: unload "
        f"after the request), got {value!r}"
    )
