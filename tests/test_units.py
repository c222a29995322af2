"""Sizes as people write them and as mlxctl prints them: one parser, one printer."""

from __future__ import annotations

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.units import human_bytes, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("2GiB", 2 << 30),
        ("512MB", 512 * 10**6),
        ("1.5g", 1_500_000_000),
        ("8 KiB", 8192),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_junk() -> None:
    with pytest.raises(InvalidInput):
        parse_size("lots")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "?"),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (17_200_000_000, "17.2 GB"),
        (3 * 10**15, "3000.0 TB"),
    ],
)
def test_human_bytes(n: int | None, text: str) -> None:
    assert human_bytes(n) == text
