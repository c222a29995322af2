"""Content-addressed blobs: `blobs/sha256-<hex>` always holds bytes with that digest.

Every write streams into a hidden temp file in the blobs folder while hashing
and is renamed to its digest only once complete and verified, so a crash (even
kill -9) leaves at worst a temp file, never a wrong or partial blob under a
digest name. An existing blob makes a write a no-op.

    .tmp-<random>              a write or import in progress (or left by a crash)
    .partial-sha256-<hex>      a resumable download of a known digest
    .corrupt-sha256-<hex>-<n>  a blob `verify` found damaged, moved aside

Writers hold an exclusive `flock` on their temp file, so `leftovers()` (what
prune may delete) never lists a file that is still being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from mlxctl.errors import Conflict, InvalidInput, Unavailable

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOB_NAME = re.compile(r"^sha256-([0-9a-f]{64})$")
_CHUNK = 1 << 20


class CorruptBlob(Unavailable):
    """Bytes that do not match their digest; nothing was stored under it."""


def check_digest(digest: object) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise InvalidInput(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 digest, size) of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    created: bool = True  # False: an identical blob was already there
    linked: bool = False  # a hard link to the source file, no bytes copied


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / ("sha256-" + check_digest(digest).removeprefix("sha256:"))

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def digests(self) -> dict[str, int]:
        """Every complete blob: digest → size."""
        found: dict[str, int] = {}
        if not self.root.is_dir():
            return found
        for entry in os.scandir(self.root):
            match = _BLOB_NAME.match(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found["sha256:" + match.group(1)] = entry.stat(follow_symlinks=False).st_size
        return found

    # Writing ---------------------------------------------------------------

    def write(self, chunks: Iterable[bytes], *, expected: str | None = None) -> Blob:
        """Store the bytes of `chunks`; with `expected`, a mismatch stores nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _TempFile(self.root) as tmp:
            for chunk in chunks:
                tmp.write(chunk)
            digest, size = tmp.digest(), tmp.size
            if expected is not None and digest != expected:
                raise CorruptBlob(
                    f"data for {expected} hashes to {digest}; nothing was stored",
                    hint="the source is damaged or changed while it was read; try again",
                )
            return tmp.commit(self.path(digest), size)

    def write_bytes(self, data: bytes) -> Blob:
        return self.write([data])

    def import_file(self, source: Path) -> Blob:
        """Store a file by hard link where the filesystem allows, else by copy."""
        source = Path(source).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{secrets.token_hex(8)}"
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or links not allowed: copy while hashing
            with source.open("rb") as f:
                return self.write(iter(lambda: f.read(_CHUNK), b""))
        try:
            with tmp.open("rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                digest, size = file_digest(tmp)
                final = self.path(digest)
                if final.exists():
                    tmp.unlink()
                    return Blob(digest, size, created=False)
                os.replace(tmp, final)
            fsync_dir(self.root)
            return Blob(digest, size, linked=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def download(self, digest: str, size: int) -> PartialBlob:
        """A resumable download of a known blob (see `PartialBlob`)."""
        return PartialBlob(self, check_digest(digest), size)

    # Checking and cleaning -------------------------------------------------

    def problem(self, digest: str, size: int | None = None) -> str | None:
        """Why the blob is not intact (missing, wrong size, wrong hash), or None."""
        path = self.path(digest)
        try:
            actual, actual_size = file_digest(path)
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return f"unreadable ({e.strerror or e})"
        if size is not None and actual_size != size:
            return f"size {actual_size}, expected {size}"
        if actual != digest:
            return f"contents hash to {actual}"
        return None

    def quarantine(self, digest: str) -> Path | None:
        """Move a damaged blob aside so nothing loads or serves it; None if already gone."""
        path = self.path(digest)
        for n in range(1000):
            target = self.root / f".corrupt-{path.name}-{n}"
            if not target.exists():
                break
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        return target

    def remove(self, digest: str) -> bool:
        """Delete a blob; False if it was already gone."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def leftovers(self) -> list[tuple[Path, int]]:
        """Temp, partial and quarantined files no running writer holds."""
        found: list[tuple[Path, int]] = []
        if not self.root.is_dir():
            return found
        for entry in os.scandir(self.root):
            if not entry.name.startswith((".tmp-", ".partial-", ".corrupt-")):
                continue
            path = Path(entry.path)
            if not _is_locked(path):
                with contextlib.suppress(OSError):
                    found.append((path, entry.stat(follow_symlinks=False).st_size))
        return sorted(found)


class PartialBlob:
    """A download into `.partial-sha256-<hex>` that survives interruptions.

    Entering locks the file (a second downloader of the same blob gets
    `Conflict`) and re-hashes what an earlier attempt left, so `offset` is where
    the next Range request starts. `commit()` renames it to its digest only when
    size and hash match; a mismatch deletes it and raises `CorruptBlob`.
    """

    def __init__(self, store: BlobStore, digest: str, size: int) -> None:
        self.store, self.digest, self.size = store, digest, size
        self.path = store.root / (".partial-" + store.path(digest).name)
        self._file: BinaryIO | None = None
        self._hasher = hashlib.sha256()
        self.offset = 0
        self.resumed_from = 0

    def __enter__(self) -> PartialBlob:
        self.store.root.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+b")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise Conflict(
                f"blob {self.digest} is being downloaded by another process",
                hint="wait for the other pull to finish, then run this one again",
            ) from None
        self._file = f
        f.seek(0)
        while chunk := f.read(_CHUNK):
            self._hasher.update(chunk)
            self.offset += len(chunk)
        if self.offset > self.size:  # longer than the blob: nothing in it can be trusted
            self.restart()
        self.resumed_from = self.offset
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock; what was written stays for a resume
            self._file = None

    def restart(self) -> None:
        """Drop what is there: the server ignored our Range request."""
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self._hasher = hashlib.sha256()
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        if self.offset + len(chunk) > self.size:
            self._discard()
            raise CorruptBlob(
                f"the registry sent more than the {self.size} bytes of {self.digest}; "
                "nothing was stored",
                hint="the registry's copy is damaged or the manifest is wrong",
            )
        self._file.seek(0, os.SEEK_END)
        self._file.write(chunk)
        self._hasher.update(chunk)
        self.offset += len(chunk)

    def commit(self) -> Blob:
        assert self._file is not None
        actual = "sha256:" + self._hasher.hexdigest()
        if self.offset != self.size or actual != self.digest:
            got = f"{self.offset} bytes" if self.offset != self.size else f"digest {actual}"
            self._discard()
            raise CorruptBlob(
                f"blob {self.digest} failed verification (got {got}); nothing was stored",
                hint="the registry served damaged data; pull again, or repair the registry copy",
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        final = self.store.path(self.digest)
        if final.exists():
            self.path.unlink()
            return Blob(self.digest, self.size, created=False)
        os.replace(self.path, final)
        fsync_dir(self.store.root)
        return Blob(self.digest, self.size)

    def _discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.restart()


class _TempFile:
    """A locked `.tmp-*` file that hashes what is written to it."""

    def __init__(self, root: Path) -> None:
        self.path = root / f".tmp-{secrets.token_hex(8)}"
        self._file: BinaryIO = self.path.open("xb")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        self._hasher = hashlib.sha256()
        self.size = 0
        self._done = False

    def __enter__(self) -> _TempFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
        if not self._done:
            self.path.unlink(missing_ok=True)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def digest(self) -> str:
        return "sha256:" + self._hasher.hexdigest()

    def commit(self, final: Path, size: int) -> Blob:
        digest = self.digest()
        if final.exists():
            return Blob(digest, size, created=False)  # __exit__ removes the temp file
        self._file.flush()
        os.fsync(self._file.fileno())
        # Read-only: an editor writing through a model folder's link must not damage a blob.
        os.chmod(self.path, 0o444)
        os.replace(self.path, final)
        self._done = True
        fsync_dir(final.parent)
        return Blob(digest, size)


def _is_locked(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    except OSError:
        return False


def fsync_dir(path: Path) -> None:
    # The rename itself must survive power loss, not only the file's bytes.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a folder of links (a materialised model); a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
