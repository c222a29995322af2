"""The checks every mlxctl HTTP server runs before a request reaches a route.

Both the daemon (`api/app.py`) and the worker (`worker/app.py`) put `HTTPGuard`
in front of their routes, so a web page cannot drive either (docs/security.md):

addresses.py   loopback, `check_bind` (no key → loopback only), the Host allow-list
origins.py     Origin patterns (MLXCTL_ORIGINS), same-origin, CORS headers
keys.py        the API key: checked in constant time, handed over in a 0600 file
session.py     the dashboard's HttpOnly session cookie, honoured from its own page only
policy.py      `GuardPolicy`: what one server lets through; `RawBodyRoute` exemptions
middleware.py  `HTTPGuard`: Host → Origin/CORS → key → Content-Type → body size
jsonbody.py    `parse_json`, `json_object`: bodies as JSON with a nesting limit

This package imports nothing from `api/` or `worker/`: each server passes its own
`respond(path, error)` to answer refusals in its dialect's envelope.
"""

from mlxctl.httpguard.addresses import HostAllowList, check_bind, is_loopback
from mlxctl.httpguard.jsonbody import MAX_DEPTH, json_object, parse_json
from mlxctl.httpguard.keys import authorized, read_key_file, write_key_file
from mlxctl.httpguard.middleware import BodyTooLarge, HTTPGuard, Respond, is_json
from mlxctl.httpguard.origins import OriginList
from mlxctl.httpguard.policy import GuardPolicy, LivePolicy, RawBodyRoute

__all__ = [
    "MAX_DEPTH",
    "BodyTooLarge",
    "GuardPolicy",
    "HTTPGuard",
    "HostAllowList",
    "LivePolicy",
    "OriginList",
    "RawBodyRoute",
    "Respond",
    "authorized",
    "check_bind",
    "is_json",
    "is_loopback",
    "json_object",
    "parse_json",
    "read_key_file",
    "write_key_file",
]
