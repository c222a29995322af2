"""Byte sizes as people write them (`16GiB`, `512MB`) and as mlxctl prints them (`17.2 GB`)."""

from __future__ import annotations

import re

from mlxctl.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from `2147483648`, `2GiB`, `512MB` or `1.5g` (binary with an `i`, else decimal)."""
    match = _SIZE.match(text)
    if not match:
        raise InvalidInput(f"{text!r} is not a size: use bytes or a unit like 512MiB or 2GB")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    power = "_kmgt".index(unit[0]) if unit else 0
    scale = 1 << (10 * power) if unit.endswith("i") else 1000**power
    return int(number * scale)


def human_bytes(n: int | None) -> str:
    """`17.2 GB` (decimal units); `?` when the size is unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
