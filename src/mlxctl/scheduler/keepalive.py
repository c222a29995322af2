"""keep_alive values: how long an idle model stays loaded.

Accepted as Ollama accepts them: a number of seconds (`300`, `0.5`), a duration
string (`30s`, `5m`, `1h30m`, `500ms`), `-1` or any negative value (forever),
`0` (unload as soon as the request ends). Parsed into seconds, None = forever.
"""

from __future__ import annotations

import math
import re

from mlxctl.errors import InvalidInput

FOREVER: None = None
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: object, *, param: str = "keep_alive") -> float | None:
    """Seconds an idle model stays loaded (None: until evicted); InvalidInput otherwise."""
    if isinstance(value, bool):
        raise _invalid(value, param)
    if isinstance(value, int | float):
        return _seconds(float(value), value, param)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return _seconds(float(text), value, param)
        except ValueError:
            pass
        negative = text.startswith("-")
        body = text.lstrip("-")
        parts = _PART.findall(body)
        if body and parts and "".join(n + u for n, u in parts) == body:
            total = sum(float(n) * _SCALE[u] for n, u in parts)
            return None if negative and total > 0 else _seconds(total, value, param)
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
    return None if number < 0 else number


def _invalid(value: object, param: str) -> InvalidInput:
    return InvalidInput(
        f"'{param}' must be seconds or a duration like 30s, 5m, 1h (-1: forever, 0: unload "
        f"after the request), got {value!r}"
    )
