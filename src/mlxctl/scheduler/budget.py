"""The memory budget: a share of physical RAM (`75%`) or a size (`16GiB`)."""

from __future__ import annotations

import os
import re

from mlxctl.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def physical_memory() -> int:
    """Bytes of RAM in this machine (unified memory on Apple silicon)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        import psutil

        return int(psutil.virtual_memory().total)


def parse_budget(text: str, total: int) -> int:
    """Bytes from `75%` (of `total`), `16GiB`, `512MB` or plain bytes."""
    percent = _PERCENT.match(text)
    if percent:
        share = float(percent.group(1))
        if not 0 < share <= 100:
            raise InvalidInput(f"memory budget {text!r}: a share must be in (0, 100]%")
        return int(total * share / 100)
    size = _SIZE.match(text)
    if not size:
        raise InvalidInput(
            f"memory budget {text!r} is neither a share of RAM (75%) nor a size (16GiB, 512MB)"
        )
    number, unit = float(size.group(1)), (size.group(2) or "").lower()
    power = "_kmgt".index(unit[0]) if unit else 0
    scale = 1 << (10 * power) if unit.endswith("i") else 1000**power
    return int(number * scale)


def human_bytes(n: int) -> str:
    """`17.2 GB`, for messages (decimal units, as the CLI prints them)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
