"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a free port.

`RegistryServer` writes a config (storage in a temp folder, optional htpasswd or
token auth) and runs `docker-registry serve`. `TokenServer` is the token
endpoint of a bearer-auth registry: it checks a password and signs a JWT with
an RSA key made by the `openssl` CLI. `RecordingProxy` sits in front of a
registry, records every request (with its Range header) and can slow blob
downloads down, so a test can kill a pull part-way through a blob.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

REGISTRY_BINARY = "/usr/bin/docker-registry"
SKIP_REASON = (
    "the OCI registry tests need Debian's docker-registry binary "
    f"({REGISTRY_BINARY}): apt-get install -y docker-registry apache2-utils"
)


def registry_binary() -> str | None:
    return REGISTRY_BINARY if Path(REGISTRY_BINARY).exists() else shutil.which("docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd line, made by apache2-utils as the registry expects."""
    out = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    )
    return out.stdout.strip() + "\n"


class RegistryServer:
    def __init__(self, root: Path, *, auth: dict[str, Any] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = root / "storage"
        self.log = root / "registry.log"
        self._auth = auth
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        binary = registry_binary()
        assert binary is not None
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(json.dumps(self._config(), indent=2))  # YAML is a superset of JSON
        with self.log.open("wb") as log:
            self._process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=1.0)
                return self
            except httpx.TransportError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self._auth is not None:
            config["auth"] = self._auth
        return config

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (to damage them in tests)."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


# Bearer tokens -------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """`GET /token?service=&scope=` with Basic credentials → a JWT the registry trusts."""

    issuer = "mlxctl-test-issuer"
    service = "mlxctl-test-registry"

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        self.root = root
        self.users = users
        self.key = root / "token.key"
        self.cert = root / "token.crt"
        self.requests: list[dict[str, Any]] = []
        request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        files = ["-keyout", str(self.key), "-out", str(self.cert)]
        subprocess.run(
            [*request, "-subj", "/CN=mlxctl-test-token", *files],
            check=True,
            capture_output=True,
        )
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self._x5c = base64.b64encode(der).decode()
        self.server = _serve(self._handle)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def registry_auth(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert),
            }
        }

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        user = self._user(handler.headers.get("Authorization", ""))
        self.requests.append({"user": user, "scope": query.get("scope", [])})
        if user is None:
            _reply(handler, 401, {"details": "bad credentials"})
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        _reply(handler, 200, {"token": self._sign(user, access), "expires_in": 300})

    def _user(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _sign(self, user: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        parts = (_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()))
        signing_input = ".".join(parts)
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# A proxy that watches (and slows) what the client asks ---------------------------


@dataclass
class SeenRequest:
    method: str
    path: str
    range: str | None


class RecordingProxy:
    """Forwards to `upstream`; blob GET bodies are sent at `bytes_per_second` if set."""

    def __init__(self, upstream: str, bytes_per_second: int | None = None) -> None:
        self.upstream = upstream
        self.bytes_per_second = bytes_per_second
        self.seen: list[SeenRequest] = []
        self._client = httpx.Client(base_url=f"http://{upstream}", timeout=30)
        self.server = _serve(self._handle, methods=("GET", "HEAD", "POST", "PUT", "PATCH"))
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        self.seen.append(SeenRequest(handler.command, handler.path, handler.headers.get("Range")))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host",)}
        request = self._client.build_request(
            handler.command, handler.path, content=body, headers=headers
        )
        response = self._client.send(request, stream=True)
        try:
            handler.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() in ("transfer-encoding", "connection"):
                    continue
                if key.lower() == "location":
                    value = value.replace(self.upstream, self.host)
                handler.send_header(key, value)
            handler.end_headers()
            if handler.command == "HEAD":
                return
            slow = self.bytes_per_second and "/blobs/sha256:" in handler.path
            for chunk in response.iter_raw(16 * 1024):
                handler.wfile.write(chunk)
                handler.wfile.flush()
                if slow:
                    time.sleep(len(chunk) / (self.bytes_per_second or 1))
        finally:
            response.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


def _serve(handle: Any, methods: tuple[str, ...] = ("GET",)) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

    for method in methods:
        setattr(Handler, f"do_{method}", lambda self: _guarded(handle, self))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _guarded(handle: Any, handler: BaseHTTPRequestHandler) -> None:
    # The client may go away mid-answer (a killed pull): nothing left to answer.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handle(handler)


def _reply(handler: BaseHTTPRequestHandler, status: int, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
