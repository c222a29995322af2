"""Filing a model directory into a Hugging Face cache, as `huggingface_hub` would.

The layout under `cache_dir/models--org--name/`:

    blobs/<etag>                  file contents, named by the Hub's etag
    refs/<ref>                    the commit hash, no trailing newline
    snapshots/<commit>/<file>     relative symlinks to ../../blobs/<etag>

The etag of an LFS file (weights, anything over 10 MiB) is its sha256; other files are
plain git objects, whose etag is the git blob sha1 of the contents.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

__all__ = ["blob_etag", "lay_out_hf_cache"]

_LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".npz", ".pt", ".pth", ".model", ".tiktoken")
_LFS_MIN_BYTES = 10 * 1024 * 1024
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20


def _new_digest(path: Path) -> hashlib._Hash:
    size = path.stat().st_size
    if path.name.endswith(_LFS_SUFFIXES) or size > _LFS_MIN_BYTES:
        return hashlib.sha256()
    return hashlib.sha1(b"blob %d\0" % size)


def blob_etag(path: Path) -> str:
    """The etag the Hub serves for `path`: sha256 for LFS files, git blob sha1 otherwise."""
    digest = _new_digest(path)
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _store_blob(path: Path, blobs: Path) -> str:
    """Copy `path` into `blobs` under its etag; an existing blob is left as it is."""
    digest = _new_digest(path)
    # Hash while copying, then rename: a blob name never points at partial contents.
    fd, tmp_name = tempfile.mkstemp(dir=blobs, suffix=".incomplete")
    tmp = Path(tmp_name)
    try:
        with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        etag = digest.hexdigest()
        target = blobs / etag
        if target.exists():
            tmp.unlink()
        else:
            tmp.chmod(0o644)
            tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return etag


def _commit_for(etags: dict[str, str]) -> str:
    digest = hashlib.sha1()
    for name in sorted(etags):
        digest.update(f"{name}\0{etags[name]}\n".encode())
    return digest.hexdigest()


def lay_out_hf_cache(
    model_dir: Path,
    cache_dir: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    ref: str = "main",
) -> Path:
    """File every file under `model_dir` into the HF cache at `cache_dir`; return the snapshot.

    `repo_id` is `org/name` (or a bare `name`). `revision` must be a 40-hex commit hash;
    by default it is derived from the files' names and etags, so equal contents always
    land in the same snapshot. `refs/<ref>` is (re)pointed at that commit.
    """
    model_dir = Path(model_dir)
    cache_dir = Path(cache_dir)
    parts = repo_id.split("/")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"repo_id must look like 'org/name', not {repo_id!r}")
    if revision is not None and not _COMMIT.fullmatch(revision):
        raise ValueError(f"revision must be a 40-character hex commit hash, not {revision!r}")
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"No files to lay out in {model_dir}")

    repo_dir = cache_dir / ("models--" + "--".join(parts))
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    etags = {p.relative_to(model_dir).as_posix(): _store_blob(p, blobs) for p in files}
    commit = revision or _commit_for(etags)

    snapshot = repo_dir / "snapshots" / commit
    for name, etag in etags.items():
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        # Relative links keep the cache valid when the whole folder is moved.
        link.symlink_to(os.path.relpath(blobs / etag, link.parent))

    ref_path = repo_dir / "refs" / ref
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    ref_path.write_text(commit)
    return snapshot
