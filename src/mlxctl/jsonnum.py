"""JSON numbers as the APIs read them: JSON has one number type, so `3.0` is the integer 3.

Clients written in languages without an integer type (or that pass floats through)
send `"max_tokens": 256.0`; the OpenAPI document (JSON Schema) calls that an integer
too, so every handler reads integers through `as_int`.
"""

from __future__ import annotations


def as_int(value: object) -> int | None:
    """`value` as an int when it is a JSON integer (`3` or `3.0`, never `true`); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
