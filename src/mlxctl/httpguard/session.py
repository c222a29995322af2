"""The dashboard's session cookie: the API key, handed over once, as an HttpOnly cookie.

The cookie holds an HMAC of the key (never the key itself), so it changes when the key
does. A browser sends cookies with requests that pages of other sites make, so the
cookie counts only on requests from the daemon's own page: no cross-site fetch
(`Sec-Fetch-Site`), no other Origin, and on a state-changing request an Origin that is
the daemon itself. `SameSite=Strict` keeps it off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from mlxctl.httpguard.origins import same_origin

__all__ = ["COOKIE", "cookie_header", "session_authorized", "session_token"]

COOKIE = "mlxctl_session"
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_OWN_FETCH = frozenset({"same-origin", "none"})  # `none`: the user typed the URL


def session_token(key: str) -> str:
    """The cookie's value for `key`: a digest the key's holder can make, nobody else."""
    return hmac.new(key.encode(), b"mlxctl dashboard session", hashlib.sha256).hexdigest()


def cookie_header(key: str | None) -> str:
    """`Set-Cookie` for a session of `key`; None clears the cookie (logout)."""
    value, age = (session_token(key), "") if key else ("", "; Max-Age=0")
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{age}"


def session_authorized(method: str, headers: Mapping[str, str], key: str) -> bool:
    """The request carries the session cookie of `key` and comes from the daemon's own page."""
    given = _cookie(headers.get("cookie", ""))
    if given is None or not hmac.compare_digest(given.encode(), session_token(key).encode()):
        return False
    if headers.get("sec-fetch-site", "same-origin") not in _OWN_FETCH:
        return False
    origin, host = headers.get("origin"), headers.get("host")
    if origin is not None:
        return same_origin(origin, host)
    # A browser sends Origin on every POST; one without it is not the dashboard's.
    return method not in _STATE_CHANGING


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
