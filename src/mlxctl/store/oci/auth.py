"""Registry credentials and the challenge dance container tools do.

Credentials come from `mlxctl login` (`MLXCTL_HOME/auth.json`, mode 0600, the
same `{"auths": {host: {"auth": base64(user:pass)}}}` shape Docker uses) and
then from Docker's own `config.json` (`$DOCKER_CONFIG` or `~/.docker`).

`RegistryAuth` is an httpx auth flow. A request goes out anonymously (or with
what worked before for that host and repository); on 401 it reads the
`WWW-Authenticate` challenge: `Basic` → retry with the password; `Bearer
realm=...,service=...,scope=...` → fetch a token from the realm (with the
password when there is one) and retry with it. Tokens are cached per
repository and access, so a push asks the token server once or twice, not per blob.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlxctl.errors import InvalidInput, Unavailable
from mlxctl.registry.db import private_dir

DOCKER_HUB = "docker.io"
_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags)/")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_CHALLENGE_PARAM = re.compile(rf"(\w+)\s*=\s*(?:({_QUOTED})|([^\s,]+))")
# A scheme name, then its `key=value` pairs (quoted values may hold commas).
_CHALLENGE = re.compile(
    rf"(?:^|,)\s*([A-Za-z][\w-]*)((?:\s*,?\s*\w+\s*=\s*(?:{_QUOTED}|[^\s,]+))*)"
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def normalize_host(registry: str) -> str:
    """`https://ghcr.io/v2/` → `ghcr.io`; Docker Hub's aliases → `docker.io`."""
    host = registry.strip()
    for prefix in ("oci://", "https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/", 1)[0].lower()
    if not host:
        raise InvalidInput(f"no registry host in {registry!r}")
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io") else host


class CredentialStore:
    """`auth.json` in MLXCTL_HOME, written temp + rename with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get(self, host: str) -> Credentials | None:
        entry = self._read().get(normalize_host(host))
        return _decode_entry(entry) if entry is not None else None

    def save(self, host: str, credentials: Credentials) -> None:
        auths = self._read()
        raw = f"{credentials.username}:{credentials.password}".encode()
        auths[normalize_host(host)] = {"auth": base64.b64encode(raw).decode()}
        self._write(auths)

    def remove(self, host: str) -> bool:
        auths = self._read()
        if auths.pop(normalize_host(host), None) is None:
            return False
        self._write(auths)
        return True

    def _read(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and isinstance(data.get("auths"), dict):
                return dict(data["auths"])
        return {}

    def _write(self, auths: dict[str, Any]) -> None:
        private_dir(self.path.parent)
        tmp = self.path.with_name(f".tmp-auth-{secrets.token_hex(4)}")
        # Created 0600 from the start: the password never sits in a readable file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": auths}, f, indent=2)
        os.replace(tmp, self.path)


def docker_credentials(host: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The `auths` entry of Docker's config.json for `host`, if any (helpers not run)."""
    env = os.environ if environ is None else environ
    folder = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    try:
        auths = json.loads((folder / "config.json").read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(auths, dict):
        return None
    wanted = normalize_host(host)
    for key, entry in auths.items():
        if normalize_host(key) == wanted or (wanted == DOCKER_HUB and key in _DOCKER_HUB_KEYS):
            found = _decode_entry(entry)
            if found is not None:
                return found
    return None


def find_credentials(host: str, store: CredentialStore) -> Credentials | None:
    return store.get(host) or docker_credentials(host)


def _decode_entry(entry: object) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return Credentials(user, password) if sep else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    return None


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic" or "bearer"
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="...",service="...",scope="..."` (one or more schemes) → challenges."""
    challenges: list[Challenge] = []
    for match in _CHALLENGE.finditer(header):
        params = {
            m.group(1).lower(): _unquote(m.group(2)) if m.group(2) else m.group(3) or ""
            for m in _CHALLENGE_PARAM.finditer(match.group(2))
        }
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


class RegistryAuth(httpx.Auth):
    """Anonymous, Basic and Bearer-token authentication for one registry host."""

    def __init__(
        self, host: str, credentials: Credentials | None, api_host: str | None = None
    ) -> None:
        self.host = host
        self.api_host = (api_host or host).lower()
        self.credentials = credentials
        self._basic = False
        self._tokens: dict[tuple[str, bool], str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.netloc.decode().lower() != self.api_host:
            yield request  # a redirect to blob storage (a CDN, S3): never send credentials there
            return
        key = _token_key(request)
        if self._basic and self.credentials is not None:
            request.headers["Authorization"] = self.credentials.basic()
        elif key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        if response.status_code != 401:
            return
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None and bearer.params.get("realm"):
            token_response = yield self._token_request(bearer)
            token = self._read_token(token_response)
            self._tokens[key] = token
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
            return
        if any(c.scheme == "basic" for c in challenges) and self.credentials is not None:
            if self._basic:
                raise self._rejected()
            self._basic = True
            request.headers["Authorization"] = self.credentials.basic()
            retried = yield request
            if retried.status_code == 401:
                raise self._rejected()

    def _token_request(self, challenge: Challenge) -> httpx.Request:
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        for scope in challenge.params.get("scope", "").split():
            params.append(("scope", scope))
        headers = {}
        if self.credentials is not None:
            params.append(("account", self.credentials.username))
            headers["Authorization"] = self.credentials.basic()
        return httpx.Request("GET", challenge.params["realm"], params=params, headers=headers)

    def _read_token(self, response: httpx.Response) -> str:
        # Bodies are read here only: blob downloads through this auth must stay streamed.
        response.read()
        if response.status_code in (401, 403):
            if self.credentials is None:
                raise Unavailable(
                    f"registry {self.host} needs authentication",
                    hint=f"log in with: mlxctl login {self.host}",
                )
            raise self._rejected()
        try:
            data = response.json()
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise Unavailable(
                f"the token server of {self.host} answered {response.status_code} without a token",
                hint="check the registry address; retry later if the registry is having problems",
            )
        return token

    def _rejected(self) -> Unavailable:
        user = self.credentials.username if self.credentials else "?"
        return Unavailable(
            f"registry {self.host} rejected the credentials of '{user}'",
            hint=f"log in again with: mlxctl login {self.host}",
        )


def _token_key(request: httpx.Request) -> tuple[str, bool]:
    """(repository, needs push): the access a request needs decides which token fits."""
    match = _REPO_PATH.match(request.url.path)
    repo = match.group(1) if match else ""
    mount_from = request.url.params.get("from")
    if mount_from:
        repo = f"{repo}<{mount_from}"
    return repo, request.method not in ("GET", "HEAD")
