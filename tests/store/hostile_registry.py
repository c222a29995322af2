"""A stand-in OCI registry that serves whatever a test gives it: a hostile registry.

Debian's docker-registry checks what is pushed to it; this one does not, so a
test can serve a manifest whose config names `../../../auth.json`, a layer
titled `.`, a manifest that never ends, or redirect manifests and blobs
elsewhere. It records every request (with its headers), and can play a blob
CDN on another port (`/cdn/<digest>`) for redirect tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlxctl.store.content.manifest import CONFIG, OCI_MANIFEST, TITLE, digest_of, media_type_for


class StandInRegistry:
    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.redirect_manifests_to: str | None = None  # a base URL
        self.redirect_blobs_to: str | None = None  # a base URL (another server's /cdn)
        self.endless_manifest = False
        self.basic_auth: str | None = None  # the Authorization value /v2/ routes require
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def blob(self, data: bytes) -> dict[str, Any]:
        """Store `data` as a blob; its descriptor fields."""
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def put_model(
        self,
        repo: str,
        tag: str,
        files: dict[str, bytes],
        *,
        config: dict[str, Any] | None = None,
        layers: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """Serve `files` as an mlxctl model at `repo:tag`; `config` overrides config fields,
        `layers` is appended as raw layer descriptors (hostile titles)."""
        body = {"mlxctl": 1, "format": "mlx", **(config or {})}
        config_descriptor = {"mediaType": CONFIG, **self.blob(json.dumps(body).encode())}
        descriptors = [
            {
                "mediaType": media_type_for(title),
                **self.blob(data),
                "annotations": {TITLE: title},
            }
            for title, data in sorted(files.items())
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor,
            "layers": descriptors + (layers or []),
        }
        data = json.dumps(manifest).encode()
        self.manifests[(repo, tag)] = data
        return data


def model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@contextmanager
def stand_in() -> Iterator[StandInRegistry]:
    registry = StandInRegistry()
    try:
        yield registry
    finally:
        registry.stop()


def _handler(registry: StandInRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, *, head: bool) -> None:
            registry.requests.append((self.command, self.path, dict(self.headers.items())))
            path = self.path.split("?", 1)[0]
            if path.startswith("/cdn/"):
                return self._bytes(registry.blobs.get(path.removeprefix("/cdn/")), head)
            if registry.basic_auth and self.headers.get("Authorization") != registry.basic_auth:
                return self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="stand-in"'})
            if path == "/v2/":
                return self._send(200, b"{}")
            repo, kind, ref = _split(path)
            if kind == "manifests":
                return self._manifest(repo, ref, head)
            if kind == "blobs":
                if registry.redirect_blobs_to:
                    return self._send(307, b"", {"Location": f"{registry.redirect_blobs_to}{ref}"})
                return self._bytes(registry.blobs.get(ref), head)
            return self._send(404, b'{"errors": []}')

        def _manifest(self, repo: str, ref: str, head: bool) -> None:
            if registry.redirect_manifests_to:
                location = f"{registry.redirect_manifests_to}/v2/{repo}/manifests/{ref}"
                return self._send(307, b"", {"Location": location})
            if registry.endless_manifest:
                return self._endless()
            data = registry.manifests.get((repo, ref))
            if data is None:
                return self._send(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest_of(data)}
            self._send(200, b"" if head else data, headers, length=len(data))

        def _endless(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", OCI_MANIFEST)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(4096):  # 256 MiB at most, should the client never stop
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client hung up: what a capped reader does
            self.close_connection = True

        def _bytes(self, data: bytes | None, head: bool) -> None:
            if data is None:
                return self._send(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
            headers = {"Content-Type": "application/octet-stream"}
            self._send(200, b"" if head else data, headers, length=len(data))

        def _send(
            self,
            status: int,
            body: bytes,
            headers: dict[str, str] | None = None,
            length: int | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _split(path: str) -> tuple[str, str, str]:
    """`/v2/<repo>/<manifests|blobs>/<ref>` → (repo, kind, ref)."""
    rest = path.removeprefix("/v2/")
    for kind in ("manifests", "blobs"):
        repo, sep, ref = rest.rpartition(f"/{kind}/")
        if sep:
            return repo, kind, ref
    return "", "", ""
