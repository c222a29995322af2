"""JSON integers as the handlers read them."""

from __future__ import annotations

import pytest

from mlxctl.jsonnum import as_int


@pytest.mark.parametrize(("value", "number"), [(3, 3), (3.0, 3), (-2.0, -2), (1e20, 10**20)])
def test_integral_numbers_are_integers(value: object, number: int) -> None:
    assert as_int(value) == number


@pytest.mark.parametrize("value", [True, False, 3.5, float("inf"), float("nan"), "3", None, [3]])
def test_anything_else_is_not(value: object) -> None:
    assert as_int(value) is None
