"""Pulling a model from the Hugging Face hub into the HF cache.

The download is huggingface_hub's own `snapshot_download`, limited to the files
mlx-lm needs (`MODEL_FILE_PATTERNS`), so the HF cache stays valid for every
other tool. `HF_ENDPOINT` and `HF_TOKEN` are read at call time. Progress comes
from huggingface_hub's byte counter through a quiet tqdm subclass.

Resume: huggingface_hub 2.x writes each file to a per-process
`blobs/<etag>.<random>.incomplete` and never reopens it, so a killed pull
would start over. Before calling it, `_finish_partials` adopts such files
(older versions' `<etag>.incomplete` too): it takes the file's lock (the one
huggingface_hub uses), fetches the rest with `Range: bytes=N-`, checks the
hash the etag names (sha256 for LFS files, the git blob sha1 otherwise) and
moves the file to `blobs/<etag>`, where snapshot_download finds it done.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import huggingface_hub
from huggingface_hub import hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from mlxctl.errors import InvalidInput, NotFound, Unavailable
from mlxctl.store.content.manifest import MODEL_FILE_PATTERNS
from mlxctl.store.progress import NoProgress, Progress

HF_PREFIX = "hf://"
# tqdm ships no type hints; huggingface_hub depends on it, so it is always there.
_TQDM: Any = importlib.import_module("tqdm.std").tqdm
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")


@dataclass(frozen=True)
class HfReference:
    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return HF_PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hf_reference(text: str) -> HfReference:
    """`[hf://]org/repo[@revision]` → HfReference."""
    raw = text.strip().removeprefix(HF_PREFIX)
    repo_id, _, revision = raw.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise InvalidInput(
            f"{text!r} is not a Hugging Face repo id",
            hint="write org/repo or org/repo@revision, e.g. mlx-community/Qwen2.5-0.5B-4bit",
        )
    # The revision names a file under refs/ in the cache: a branch, tag or commit, no path.
    if revision and (not _REVISION.match(revision) or ".." in revision.split("/")):
        raise InvalidInput(
            f"{revision!r} in {text!r} is not a Hugging Face revision",
            hint="a branch, tag or commit: letters, digits, '.', '_', '-' and '/'",
        )
    return HfReference(repo_id, revision or None)


def looks_like_hf(text: str) -> bool:
    """`hf://...`, or `org/repo` whose first part is not a registry host."""
    if text.startswith(HF_PREFIX):
        return True
    if text.startswith("oci://"):
        return False
    first, sep, _ = text.partition("/")
    return bool(sep) and "." not in first and ":" not in first and first != "localhost"


def download_snapshot(
    ref: HfReference,
    cache_dir: Path,
    *,
    progress: Progress | None = None,
    key: str = "hf",
) -> Path:
    """Download (or finish downloading) `ref` into the HF cache; its snapshot folder."""
    progress = progress or NoProgress()
    hint_token = "set HF_TOKEN to a token of an account with access (export HF_TOKEN=hf_...)"
    endpoint = os.environ.get("HF_ENDPOINT") or None
    _finish_partials(ref, cache_dir, endpoint, progress)
    try:
        path = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(MODEL_FILE_PATTERNS),
            endpoint=endpoint,
            tqdm_class=_progress_class(progress, key, ref.repo_id),
            max_workers=4,
        )
    except GatedRepoError:
        raise Unavailable(
            f"{ref.repo_id} is a gated repo: its files need an accepted license and a token",
            hint=f"accept the terms on the model's Hub page, then {hint_token}",
        ) from None
    except RepositoryNotFoundError:
        raise NotFound(
            f"no Hugging Face repo {ref.repo_id} (or it is private)",
            hint=f"check the name; for a private repo {hint_token}",
        ) from None
    except RevisionNotFoundError:
        raise NotFound(f"{ref.repo_id} has no revision {ref.revision!r}") from None
    # huggingface_hub's transport errors vary by version (requests, httpx, httpx2).
    except Exception as e:
        raise Unavailable(
            f"downloading {ref} failed: {_first_line(e)}",
            hint="check your connection (and HF_ENDPOINT); run the pull again to resume",
        ) from e
    progress.finish(key, "downloaded")
    return Path(path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _progress_class(progress: Progress, key: str, label: str) -> type[Any]:
    """A tqdm class that feeds `progress` from huggingface_hub's aggregate byte bar.

    snapshot_download makes three bars from it: a file counter (unit "it"), a
    network-bytes bar ("Downloading bytes") and the bytes-on-disk bar we report,
    which also counts bytes a resumed `.incomplete` file already held.
    """

    class _Bar(_TQDM):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            desc = str(kwargs.get("desc") or "")
            self._reports = kwargs.get("unit") == "B" and not desc.startswith("Downloading bytes")
            if self._reports:
                progress.start(key, label, None, 0)

        def update(self, n: float | None = 1) -> Any:
            result = super().update(n)
            if self._reports:
                total = int(self.total) if self.total else None
                progress.advance(key, int(self.n), total)
            return result

    return _Bar


def _finish_partials(
    ref: HfReference, cache_dir: Path, endpoint: str | None, progress: Progress
) -> None:
    """Complete the partial files a killed pull of `ref` left in the HF cache (see above).

    Best effort: anything unexpected (no cached file list, a file another
    process is downloading, a failed request) leaves it to snapshot_download.
    """
    repo_dir = Path(cache_dir) / ("models--" + ref.repo_id.replace("/", "--"))
    partials = sorted((repo_dir / "blobs").glob("*.incomplete"), key=_size, reverse=True)
    if not partials:
        return
    commit = ref.revision or "main"
    if not _COMMIT.match(commit):
        try:
            commit = (repo_dir / "refs" / commit).read_text().strip()
        except OSError:
            return  # the killed pull never learnt the commit: nothing of it can be trusted
    try:
        # The file list with LFS sha256s (the cached listing on disk leaves them out).
        api = huggingface_hub.HfApi(endpoint=endpoint)
        listing = api.list_repo_tree(ref.repo_id, revision=commit, recursive=True)
        files = {_etag(f): f for f in listing if isinstance(f, huggingface_hub.RepoFile)}
    except Exception:  # offline, gated...: snapshot_download will say so properly
        return
    for partial in partials:
        etag = partial.name.split(".", 1)[0]
        entry = files.get(etag)
        if entry is None or not partial.exists() or (repo_dir / "blobs" / etag).exists():
            continue
        lock_path = Path(cache_dir) / ".locks" / repo_dir.name / f"{etag}.lock"
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with lock_path.open("a") as lock:
                # The lock huggingface_hub's download of this file holds (filelock: flock).
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process is downloading this file right now
                url = hf_hub_url(ref.repo_id, entry.path, revision=commit, endpoint=endpoint)
                _resume_file(url, partial, repo_dir / "blobs" / etag, entry, progress)
                if (repo_dir / "blobs" / etag).exists():  # older partials of it are dead
                    for other in (repo_dir / "blobs").glob(f"{etag}.*incomplete"):
                        other.unlink(missing_ok=True)
        except (httpx.HTTPError, OSError):
            continue


def _resume_file(url: str, partial: Path, blob: Path, entry: Any, progress: Progress) -> None:
    size = int(entry.lfs.size if entry.lfs is not None else entry.size)
    have = partial.stat().st_size
    if have > size:
        partial.unlink()
        return
    key = f"resume:{blob.name}"
    progress.start(key, f"resume {entry.path}", size, have)
    headers = {"Range": f"bytes={have}-", "Accept-Encoding": "identity"}
    if token := huggingface_hub.get_token():
        headers["Authorization"] = f"Bearer {token}"  # httpx drops it on a CDN redirect
    if have < size:
        with (
            httpx.stream(
                "GET", url, headers=headers, follow_redirects=True, timeout=60
            ) as response,
            partial.open("ab") as f,
        ):
            if response.status_code != 206:
                return  # no usable Range answer: snapshot_download starts this file over
            for chunk in response.iter_bytes():
                f.write(chunk)
                have += len(chunk)
                progress.advance(key, have)
    if _file_etag(partial, lfs=entry.lfs is not None) != blob.name or have != size:
        partial.unlink()  # damaged: never let it become the blob
        progress.finish(key, "discarded (hash mismatch)")
        return
    partial.chmod(0o644)
    os.replace(partial, blob)
    progress.finish(key, f"resumed from {partial.name}")


def _etag(entry: Any) -> str:
    return str(entry.lfs.sha256 if entry.lfs is not None else entry.blob_id)


def _file_etag(path: Path, *, lfs: bool) -> str:
    """What the hub's etag for these bytes would be: sha256 (LFS) or the git blob sha1."""
    size = path.stat().st_size
    hasher = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
