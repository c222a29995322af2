from __future__ import annotations

import pytest

from mlxctl.client import parse_address
from mlxctl.errors import InvalidInput


@pytest.mark.parametrize(
    ("value", "host", "port", "url"),
    [
        ("", "127.0.0.1", 11500, "http://127.0.0.1:11500"),
        ("127.0.0.1:11500", "127.0.0.1", 11500, "http://127.0.0.1:11500"),
        ("0.0.0.0:8000", "0.0.0.0", 8000, "http://127.0.0.1:8000"),
        ("localhost", "localhost", 11500, "http://localhost:11500"),
        (":9000", "127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("http://box.lan:80", "box.lan", 80, "http://box.lan:80"),
        ("https://box.lan", "box.lan", 443, "https://box.lan:443"),
        ("[::1]:7000", "::1", 7000, "http://[::1]:7000"),
        ("[::]:7000", "::", 7000, "http://[::1]:7000"),
    ],
)
def test_addresses(value: str, host: str, port: int, url: str) -> None:
    address = parse_address(value)
    assert (address.host, address.port, address.url) == (host, port, url)


@pytest.mark.parametrize("value", ["ftp://x:1", "x:notaport", "http://x:1/path"])
def test_bad_addresses(value: str) -> None:
    with pytest.raises(InvalidInput, match="MLXCTL_HOST"):
        parse_address(value)
