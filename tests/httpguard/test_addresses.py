"""Which Host headers a server answers, and who may listen beyond loopback."""

from __future__ import annotations

import socket

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.httpguard import HostAllowList, check_bind, is_loopback
from mlxctl.httpguard.addresses import split_host


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com", ""))


def test_split_host() -> None:
    assert split_host("LocalHost:11500") == ("localhost", 11500)
    assert split_host("[::1]:8080") == ("::1", 8080)
    assert split_host("[::1]") == ("::1", None)
    assert split_host("::1") == ("::1", None)
    assert split_host("example.com.") == ("example.com", None)


@pytest.mark.parametrize(
    "header",
    ["localhost", "localhost:11500", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:11500",
     "app.localhost:3000", None, ""],
)  # fmt: skip
def test_loopback_hosts_are_always_answered(header: str | None) -> None:
    assert HostAllowList.parse("127.0.0.1", "").allows(header)


@pytest.mark.parametrize(
    "header",
    ["attacker.example", "attacker.example:11500", "127.0.0.1.nip.io", "localhost.evil.com",
     "192.168.1.5:11500"],
)  # fmt: skip
def test_rebindable_names_are_refused_on_loopback(header: str) -> None:
    assert not HostAllowList.parse("127.0.0.1", "").allows(header)


def test_the_bound_address_and_listed_names() -> None:
    hosts = HostAllowList.parse("192.168.1.5", "proxy.example, *.corp.example, api.example:8443")
    assert hosts.allows("192.168.1.5:11500")
    assert hosts.allows("PROXY.example")
    assert hosts.allows("llm.corp.example:443")
    assert not hosts.allows("corp.example.attacker.com")
    assert hosts.allows("api.example:8443") and not hosts.allows("api.example:80")
    assert not hosts.allows("192.168.1.6")
    assert HostAllowList.parse("127.0.0.1", "*").allows("anything.example")


def test_listening_everywhere_answers_ip_literals_and_our_own_name() -> None:
    hosts = HostAllowList.parse("0.0.0.0", "")
    assert hosts.allows("10.1.2.3:11500") and hosts.allows("[fe80::1]:11500")
    assert hosts.allows(socket.gethostname())
    assert not hosts.allows("attacker.example")


def test_check_bind_names_the_setting() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "secret")
    with pytest.raises(InvalidInput) as caught:
        check_bind("0.0.0.0", None, what="run slot workers", setting="MLXCTL_SLOT_HOST")
    assert "refusing to run slot workers on 0.0.0.0 without an API key" in caught.value.message
    assert caught.value.hint and "MLXCTL_SLOT_HOST=127.0.0.1" in caught.value.hint
