"""The memory budget: a share of physical RAM (`75%`) or a size (`16GiB`)."""

from __future__ import annotations

import os
import re

from mlxctl.errors import InvalidInput
from mlxctl.units import parse_size

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
    try:
        return parse_size(text)
    except InvalidInput:
        raise InvalidInput(
            f"memory budget {text!r} is neither a share of RAM (75%) nor a size (16GiB, 512MB)"
        ) from None
