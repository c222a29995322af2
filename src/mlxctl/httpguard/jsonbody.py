"""Request bodies as JSON, with a nesting limit; the daemon and the worker both parse here.

Python's parser recurses once per level, and every later walk over the value does
too, so `[[[[...]]]]` a few thousand deep ends in RecursionError somewhere far from
the request. Bodies nested deeper than MAX_DEPTH are refused up front with a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlxctl.openai_error import APIError

__all__ = ["MAX_DEPTH", "json_object", "nesting_depth", "parse_json"]

MAX_DEPTH = 64

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_json(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded body; a 400 (`invalid_json`) for bad JSON or nesting beyond `max_depth`."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(
            400, f"The request body is not valid JSON: {e}", code="invalid_json"
        ) from None
    if isinstance(value, dict | list) and nesting_depth(raw) > max_depth:
        raise _too_deep(max_depth)
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be an object: empty is `{}`; bad JSON or nesting too deep
    is a 400 `invalid_json`, valid JSON of another kind a 400 too."""
    body = parse_json(raw or b"{}")
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    return body


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in valid JSON `raw` (0 for a scalar).

    Strings are cut out first (they may hold brackets), then the brackets' running
    sum is taken in numpy: linear and fast even for a body of many megabytes.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    import numpy as np  # here, not at import: the CLI imports this package too

    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _too_deep(max_depth: int) -> APIError:
    return APIError(
        400,
        f"The request body nests arrays and objects more than {max_depth} levels deep.",
        code="invalid_json",
    )
