"""A local stand-in for the Hugging Face hub's file endpoints (point HF_ENDPOINT at it).

It answers what `huggingface_hub.snapshot_download` asks, with the headers the
client reads:

    GET  /api/models/<repo>/revision/<rev>         repo info: `sha` = the commit
    GET  /api/models/<repo>/tree/<rev>?recursive=   file list (oid, size, lfs sha256)
    HEAD /<repo>/resolve/<rev>/<file>              X-Repo-Commit, ETag, Content-Length
    GET  /<repo>/resolve/<rev>/<file>              the bytes; honours `Range: bytes=N-`

ETags follow the hub: sha256 for LFS files (weights), git blob sha1 otherwise.
A gated repo answers 403 with `X-Error-Code: GatedRepo` on file requests.
`bytes_per_second` slows file bodies down; `seen` records every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlxctl.factory.hflayout import blob_etag
from tests.store.registry_server import SeenRequest, _serve

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree)/(?P<rev>[^/?]+)")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class HubRepo:
    commit: str
    files: dict[str, bytes]
    etags: dict[str, str]
    gated: bool = False
    lfs: set[str] = field(default_factory=set)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.seen: list[SeenRequest] = []
        self.bytes_per_second: int | None = None
        self.server = _serve(self._handle, methods=("GET", "HEAD"))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_repo(self, repo_id: str, folder: Path, *, gated: bool = False) -> str:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        etags = {name: blob_etag(folder / name) for name in files}
        commit = hashlib.sha1(json.dumps(etags, sort_keys=True).encode()).hexdigest()
        lfs = {n for n, e in etags.items() if len(e) == 64}
        self.repos[repo_id] = HubRepo(commit, files, etags, gated, lfs)
        return commit

    def ranges(self) -> list[str]:
        return [s.range for s in self.seen if s.range]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # Requests ----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.seen.append(SeenRequest(handler.command, path, handler.headers.get("Range")))
        if match := _API.match(path):
            repo = self.repos.get(match["repo"])
            if repo is None:
                return self._error(handler, 404, "RepoNotFound", None)
            if match["rev"] not in ("main", repo.commit):
                return self._error(handler, 404, "RevisionNotFound", None)
            return self._json(handler, self._info(match["repo"], repo, match["kind"]))
        if match := _RESOLVE.match(path):
            repo = self.repos.get(match["repo"])
            if repo is None or match["rev"] not in ("main", repo.commit):
                return self._error(handler, 404, "RepoNotFound", None)
            if repo.gated:
                return self._error(handler, 403, "GatedRepo", repo.commit)
            if match["file"] not in repo.files:
                return self._error(handler, 404, "EntryNotFound", repo.commit)
            return self._file(handler, repo, match["file"])
        return self._error(handler, 404, "RepoNotFound", None)

    def _info(self, repo_id: str, repo: HubRepo, kind: str) -> Any:
        if kind == "revision":
            return {
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "siblings": [{"rfilename": name} for name in repo.files],
            }
        entries = []
        for name, data in repo.files.items():
            entry: dict[str, Any] = {
                "type": "file",
                "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                "size": len(data),
                "path": name,
            }
            if name in repo.lfs:
                entry["lfs"] = {"oid": repo.etags[name], "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def _file(self, handler: BaseHTTPRequestHandler, repo: HubRepo, name: str) -> None:
        data = repo.files[name]
        start = 0
        match = re.match(r"bytes=(\d+)-", handler.headers.get("Range") or "")
        if match and int(match[1]) < len(data):
            start = int(match[1])
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.send_header("ETag", f'"{repo.etags[name]}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if handler.command == "HEAD":
            return
        view = memoryview(data)[start:]
        step = 16 * 1024
        for offset in range(0, len(view), step):
            handler.wfile.write(view[offset : offset + step])
            handler.wfile.flush()
            if self.bytes_per_second:
                time.sleep(step / self.bytes_per_second)

    def _json(self, handler: BaseHTTPRequestHandler, data: Any) -> None:
        body = json.dumps(data).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _error(
        self, handler: BaseHTTPRequestHandler, status: int, code: str, commit: str | None
    ) -> None:
        body = json.dumps({"error": f"{code} (stand-in hub)"}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", f"{code} (stand-in hub)")
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
