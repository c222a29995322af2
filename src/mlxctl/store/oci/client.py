"""A client for the OCI distribution API (any Docker/OCI registry), over httpx.

    HEAD  /v2/<repo>/blobs/<digest>                       does the registry have it?
    POST  /v2/<repo>/blobs/uploads/?mount=<d>&from=<r>    cross-repository mount
    POST  /v2/<repo>/blobs/uploads/                       start an upload session
    PATCH <location>  Content-Range: a-b                  one chunk (large blobs)
    PUT   <location>?digest=<d>                           finish (or monolithic upload)
    GET   /v2/<repo>/blobs/<digest>  Range: bytes=N-      download, resumable
    PUT / GET /v2/<repo>/manifests/<tag or digest>

Every downloaded blob goes through `BlobStore.download`, so bytes that do not
match their digest are never stored. Plain http is used for localhost and
127.0.0.1 registries, or for any registry with `insecure=True`; otherwise no
request goes out over plain http, token realms and redirects included.

A registry is not trusted: manifests are read streamed up to 4 MiB, config
blobs up to 1 MiB, and only blob downloads follow redirects (to a CDN; httpx
drops the credentials when the host changes). Manifest and API calls never
follow one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from mlxctl import __version__
from mlxctl.errors import InvalidInput, NotFound, Unavailable
from mlxctl.store.content.blobs import Blob, BlobStore, CorruptBlob, PartialBlob, check_digest
from mlxctl.store.content.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor, digest_of
from mlxctl.store.oci.auth import DOCKER_HUB, Credentials, RegistryAuth, normalize_host
from mlxctl.store.progress import NoProgress, Progress

DEFAULT_CHUNK = 16 << 20
_ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_LOCAL = ("localhost", "127.0.0.1", "[::1]")
_ATTEMPTS = 3  # downloads resume with Range after a dropped connection
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class OciReference:
    host: str
    repository: str
    tag: str | None = "latest"
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What the manifest URL names: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tail = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"{self.host}/{self.repository}{tail}"


def parse_reference(text: str) -> OciReference:
    """`[oci://]host[:port]/repo/path[:tag][@sha256:...]` → OciReference."""
    raw = text.strip().removeprefix("oci://")
    host, sep, rest = raw.partition("/")
    if not sep or not rest or not ("." in host or ":" in host or host == "localhost"):
        raise InvalidInput(
            f"{text!r} does not name a registry",
            hint="write REGISTRY/REPOSITORY[:TAG], e.g. localhost:5000/team/model:v1",
        )
    host = normalize_host(host)
    rest, _, digest = rest.partition("@")
    repo, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = rest.rsplit(":", 1)
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    if not _REPO.match(repo):
        raise InvalidInput(
            f"invalid repository {repo!r} in {text!r}",
            hint="repository paths are lowercase a-z, 0-9 and '.', '_', '-' separators",
        )
    if tag is not None and not _TAG.match(tag):
        raise InvalidInput(f"invalid tag {tag!r} in {text!r}")
    if digest:
        check_digest(digest)
    return OciReference(host, repo, tag if tag or digest else "latest", digest or None)


class RegistryClient:
    """One registry host; use as a context manager so the connection pool closes."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = normalize_host(host)
        self.chunk_size = chunk_size
        api_host = "registry-1.docker.io" if self.host == DOCKER_HUB else self.host
        plain = insecure or api_host.rsplit(":", 1)[0] in _LOCAL or api_host.startswith("[::1]")
        self.plain = plain
        self.base_url = f"{'http' if plain else 'https'}://{api_host}"
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=RegistryAuth(self.host, credentials, api_host),
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            headers={"User-Agent": f"mlxctl/{__version__}"},
            event_hooks={"request": [self._check_scheme]},
            transport=transport,
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()

    # Requests --------------------------------------------------------------

    def _check_scheme(self, request: httpx.Request) -> None:
        """Every request of an https registry (token realm, redirect) stays https."""
        if not self.plain and request.url.scheme != "https":
            raise Unavailable(
                f"registry {self.host} sent mlxctl to {request.url.copy_with(query=None)} "
                "over plain http; refused",
                hint="pass --insecure only for a registry you trust on your own network",
            )

    def _request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        redirects: bool = False,
    ) -> httpx.Response:
        try:
            return self.http.request(
                method,
                url,
                content=content,
                headers=headers,
                params=params,
                follow_redirects=redirects,
            )
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e

    def _unreachable(self, error: Exception) -> Unavailable:
        hint = "check the address and that the registry is running"
        if "SSL" in str(error) or "ssl" in str(error):
            hint = (
                "a plain-http registry? pass --insecure (localhost and 127.0.0.1 use http already)"
            )
        return Unavailable(f"cannot reach registry {self.host}: {error}", hint=hint)

    def ping(self) -> None:
        """GET /v2/: authenticates (raising on rejected credentials) and checks the API."""
        self._check(self._request("GET", "/v2/"), "the registry API (/v2/)", (200,))

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", redirects=True)
        if response.status_code == 404:
            return False
        self._check(response, f"blob {digest}", (200,))
        return True

    def mount(self, repo: str, digest: str, source: str) -> str | None:
        """Mount `digest` from `source`; None when mounted, else an upload location to use."""
        url = f"/v2/{repo}/blobs/uploads/"
        params = {"mount": digest, "from": source}
        response = self._request("POST", url, params=params)
        if response.status_code == 201:
            return None
        self._check(response, f"mounting {digest} from {source}", (202,))
        return self._location(response)

    def upload(
        self,
        repo: str,
        path: Path,
        digest: str,
        size: int,
        *,
        location: str | None = None,
        progress: Progress | None = None,
        key: str = "",
    ) -> None:
        """Upload a local file as `digest`: one PUT when small, else PATCH chunks."""
        progress = progress or NoProgress()
        if location is None:
            started = self._request("POST", f"/v2/{repo}/blobs/uploads/")
            self._check(started, f"starting the upload of {digest}", (202,))
            location = self._location(started)
        body = b""
        with path.open("rb") as f:
            if size > self.chunk_size:
                offset = 0
                while chunk := f.read(self.chunk_size):
                    headers = {
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    }
                    patched = self._request("PATCH", location, content=chunk, headers=headers)
                    self._check(patched, f"uploading {digest}", (202,))
                    location = self._location(patched)
                    offset += len(chunk)
                    progress.advance(key, offset)
            else:
                body = f.read()
        final = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        done = self._request("PUT", final, content=body, headers=headers)
        if done.status_code == 400 and "DIGEST_INVALID" in done.text:
            raise CorruptBlob(
                f"the registry computed another digest for local blob {digest}",
                hint="the local copy is damaged: run `mlxctl store verify`",
            )
        self._check(done, f"finishing the upload of {digest}", (201, 204))
        progress.advance(key, size)

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        headers = {"Content-Type": OCI_MANIFEST}
        response = self._request(
            "PUT", f"/v2/{repo}/manifests/{reference}", content=data, headers=headers
        )
        self._check(response, f"manifest {repo}:{reference}", (201, 200))
        return response.headers.get("Docker-Content-Digest") or digest_of(data)

    def get_manifest(self, ref: OciReference) -> tuple[bytes, str]:
        """The manifest's exact bytes (at most 4 MiB) and their digest, checked
        against what was asked."""
        url = f"/v2/{ref.repository}/manifests/{ref.reference}"
        data, headers = self._small_body(
            url, f"the manifest of {ref}", MAX_MANIFEST_BYTES, headers={"Accept": _ACCEPT}
        )
        digest = digest_of(data)
        claimed = ref.digest or headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise CorruptBlob(
                f"the manifest of {ref} hashes to {digest}, not {claimed}; nothing was stored",
                hint="the registry served damaged data; try again",
            )
        return data, digest

    def get_config(self, repo: str, descriptor: Descriptor) -> bytes:
        """A config blob's bytes (at most 1 MiB), checked against its digest; not stored."""
        if descriptor.size > MAX_CONFIG_BYTES:
            raise InvalidInput(
                f"the model config blob is {descriptor.size} bytes (at most {MAX_CONFIG_BYTES})"
            )
        url = f"/v2/{repo}/blobs/{descriptor.digest}"
        what = f"blob {descriptor.digest}"
        data, _ = self._small_body(url, what, descriptor.size, redirects=True)
        if len(data) != descriptor.size or digest_of(data) != descriptor.digest:
            raise CorruptBlob(
                f"config blob {descriptor.digest} from {self.host} does not match its digest; "
                "nothing was stored",
                hint="the registry served damaged data; try again",
            )
        return data

    def _small_body(
        self,
        url: str,
        what: str,
        limit: int,
        *,
        headers: dict[str, str] | None = None,
        redirects: bool = False,
    ) -> tuple[bytes, httpx.Headers]:
        """A GET's body (read streamed, refused past `limit` bytes) and its headers."""
        try:
            with self.http.stream("GET", url, headers=headers, follow_redirects=redirects) as r:
                if r.status_code != 200:
                    r.read()
                    self._check(r, what, (200,))
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise InvalidInput(f"{what} from {self.host} is over {limit} bytes")
                return bytes(body), r.headers
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e

    def download(
        self,
        repo: str,
        descriptor: Descriptor,
        blobs: BlobStore,
        *,
        progress: Progress | None = None,
        key: str = "",
    ) -> tuple[Blob, int]:
        """Fetch one blob into the store, resuming a partial file; (blob, resumed-from bytes)."""
        progress = progress or NoProgress()
        url = f"/v2/{repo}/blobs/{descriptor.digest}"
        with blobs.download(descriptor.digest, descriptor.size) as part:
            resumed = part.offset
            progress.start(key, descriptor.title or "config", descriptor.size, part.offset)
            for attempt in range(_ATTEMPTS):
                if part.offset >= descriptor.size:
                    break
                try:
                    self._fetch_into(url, part, descriptor, progress, key)
                    break
                except (httpx.TransportError, httpx.StreamError) as e:
                    if attempt == _ATTEMPTS - 1:
                        raise Unavailable(
                            f"downloading {descriptor.digest} from {self.host} failed: {e}",
                            hint="run the pull again: it resumes where this one stopped",
                        ) from e
            return part.commit(), resumed

    def _fetch_into(
        self, url: str, part: PartialBlob, descriptor: Descriptor, progress: Progress, key: str
    ) -> None:
        headers = {"Range": f"bytes={part.offset}-"} if part.offset else {}
        # Blob downloads may be redirected to storage (a CDN, S3), without our credentials.
        with self.http.stream("GET", url, headers=headers, follow_redirects=True) as response:
            resumed = response.status_code == 206 and _range_start(response) == part.offset
            if response.status_code == 200:
                if part.offset:
                    part.restart()  # the registry ignored our Range: start over
            elif not resumed:
                response.read()
                self._check(response, f"blob {descriptor.digest}", (200, 206))
                raise Unavailable(f"unexpected Content-Range from {self.host} for {url}")
            for chunk in response.iter_bytes():  # as received: a kill loses little
                part.write(chunk)
                progress.advance(key, part.offset)

    # Responses -------------------------------------------------------------

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise Unavailable(f"registry {self.host} started an upload without a Location")
        return str(httpx.URL(self.base_url).join(location))

    def _check(self, response: httpx.Response, what: str, ok: tuple[int, ...]) -> None:
        if response.status_code in ok:
            return
        if response.status_code == 401:
            raise Unavailable(
                f"registry {self.host} needs authentication for {what}",
                hint=f"log in with: mlxctl login {self.host}",
            )
        detail = _error_detail(response)
        if response.status_code == 403:
            raise Unavailable(
                f"registry {self.host} denied access to {what}{detail}",
                hint="check that your account may push/pull this repository",
            )
        if response.status_code == 404:
            raise NotFound(
                f"{what} not found on {self.host}{detail}",
                hint="check the repository and tag (and that you are logged in for private ones)",
            )
        raise Unavailable(
            f"registry {self.host} answered {response.status_code} for {what}{detail}"
        )


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _error_detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        messages = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    return f" ({'; '.join(messages)})" if messages else ""
