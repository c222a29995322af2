"""Origin patterns (as OLLAMA_ORIGINS), same-origin, and the preflight answer."""

from __future__ import annotations

from mlxctl.httpguard import OriginList
from mlxctl.httpguard.origins import preflight_headers, same_origin


def test_patterns_match_like_ollama_origins() -> None:
    listed = OriginList.parse("http://localhost:*, app://*, https://*.example.com, null")
    assert listed.allows("http://localhost:3000")
    assert listed.allows("HTTP://LOCALHOST:5173")
    assert listed.allows("app://obsidian.md")
    assert listed.allows("https://ui.example.com")
    assert listed.allows("null")
    assert not listed.allows("http://localhost.evil.com")
    assert not listed.allows("https://localhost:3000")
    assert not listed.allows("https://example.com.evil.net")
    assert not OriginList.parse("").allows("http://localhost:3000")
    assert OriginList.parse("*").allows("https://any.site")


def test_same_origin_compares_host_and_port() -> None:
    assert same_origin("http://127.0.0.1:11500", "127.0.0.1:11500")
    assert same_origin("http://localhost", "localhost:80")
    assert same_origin("https://llm.example.com", "llm.example.com")
    assert not same_origin("http://127.0.0.1:3000", "127.0.0.1:11500")
    assert not same_origin("http://attacker.example:11500", "127.0.0.1:11500")
    assert not same_origin("null", "127.0.0.1:11500")
    assert not same_origin("http://127.0.0.1:11500", None)


def test_preflight_headers_list_ours_and_echo_clean_requested_ones() -> None:
    headers = dict(preflight_headers("http://localhost:3000", "X-Stainless-OS, bad header", True))
    allowed = headers["access-control-allow-headers"].split(", ")
    for name in ("authorization", "content-type", "x-api-key", "anthropic-version",
                 "anthropic-beta", "x-request-id", "x-stainless-os"):  # fmt: skip
        assert name in allowed
    assert "bad header" not in allowed
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-private-network"] == "true"
    assert "Origin" in headers["vary"]
