"""The dashboard's session cookie: honoured only from the daemon's own page."""

from __future__ import annotations

from mlxctl.httpguard.session import COOKIE, cookie_header, session_authorized, session_token

KEY = "the-key"
HOST = "127.0.0.1:11500"
OWN = "http://127.0.0.1:11500"


def headers(**more: str) -> dict[str, str]:
    return {"host": HOST, "cookie": f"other=1; {COOKIE}={session_token(KEY)}", **more}


def test_the_cookie_is_a_digest_of_the_key_httponly_and_strict() -> None:
    set_cookie = cookie_header(KEY)
    assert KEY not in set_cookie and session_token(KEY) in set_cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in set_cookie.split(";")}
    assert session_token(KEY) != session_token("another-key")  # a new key ends every session
    assert cookie_header(None).endswith("Max-Age=0")


def test_reads_from_the_page_and_writes_with_its_origin_pass() -> None:
    assert session_authorized("GET", headers(), KEY)
    assert session_authorized("GET", headers(**{"sec-fetch-site": "same-origin"}), KEY)
    assert session_authorized("GET", headers(**{"sec-fetch-site": "none"}), KEY)  # typed URL
    assert session_authorized("POST", headers(origin=OWN), KEY)


def test_anything_else_is_refused() -> None:
    refused = [
        ("GET", {"host": HOST}),  # no cookie
        ("GET", {"host": HOST, "cookie": f"{COOKIE}=forged"}),
        ("GET", {"host": HOST, "cookie": f"{COOKIE}={session_token('old-key')}"}),
        ("GET", {"host": HOST, "cookie": 'bad"cookie; ='}),
        ("GET", headers(**{"sec-fetch-site": "cross-site"})),
        ("GET", headers(**{"sec-fetch-site": "same-site"})),  # another port of this machine
        ("GET", headers(origin="http://localhost:3000")),  # even a listed MLXCTL_ORIGINS page
        ("POST", headers()),  # a browser sends Origin on every POST: not the page
        ("POST", headers(origin="http://evil.example")),
        ("DELETE", headers(origin="null")),
    ]
    for method, given in refused:
        assert not session_authorized(method, given, KEY), (method, given)
