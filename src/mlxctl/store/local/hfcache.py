"""Models already downloaded to the Hugging Face hub cache.

`scan_hf_cache` walks the cache with huggingface_hub's own `scan_cache_dir`,
inspects every revision snapshot of every model repo, and sorts the results
into usable MLX models (`found`) and everything else (`skipped`, one line of
reason each). Corrupted cache entries come back as `warnings`; nothing in the
cache makes the scan raise. Dataset, space and kernel repos are ignored, and
only counted in `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CachedRepoInfo, CachedRevisionInfo, scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from mlxctl.errors import InvalidInput
from mlxctl.registry.record import ModelRecord, slugify
from mlxctl.store.local.modelinfo import FolderInfo, inspect_model_dir, to_record

HF_SOURCE = "hf-cache"


@dataclass(frozen=True)
class FoundModel:
    """One usable revision snapshot.

    `record.slug` is `slugify(<repo name>)`, so every revision of a repo (and
    same-named repos of different owners) share a slug: the registry decides
    which one to keep, preferring `is_main_ref` (the revision refs/main names).
    """

    record: ModelRecord
    info: FolderInfo
    refs: tuple[str, ...]
    is_main_ref: bool
    last_modified: float


@dataclass(frozen=True)
class SkippedEntry:
    """A model revision in the cache that mlxctl cannot serve, and why."""

    repo_id: str
    revision: str | None
    path: Path
    reason: str


@dataclass(frozen=True)
class ScanResult:
    """What a cache scan found.

    `found` is ordered by repo id; within a repo the refs/main revision comes
    first, then the most recently modified. `warnings` are the corrupted
    entries huggingface_hub reported; `notes` are informational lines (a
    missing cache folder, ignored non-model repos).
    """

    cache_dir: Path
    found: tuple[FoundModel, ...] = ()
    skipped: tuple[SkippedEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def preferred(self) -> tuple[FoundModel, ...]:
        """One entry per repo: its refs/main revision, else its newest one."""
        seen: set[str | None] = set()
        chosen = []
        for model in self.found:
            if model.record.repo_id not in seen:
                seen.add(model.record.repo_id)
                chosen.append(model)
        return tuple(chosen)

    def records(self) -> list[ModelRecord]:
        return [model.record for model in self.found]


def scan_hf_cache(cache_dir: Path) -> ScanResult:
    """Scan the Hugging Face hub cache at `cache_dir` for MLX models.

    Never raises for the cache's contents: a missing folder gives an empty
    result with a note, corrupted repos become warnings, and revisions that
    are not usable MLX models become `skipped` entries.
    """
    cache_dir = Path(cache_dir).expanduser()
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return ScanResult(cache_dir=cache_dir, notes=(f"no Hugging Face cache at {cache_dir}",))
    except ValueError as e:  # huggingface_hub's answer for a file where the folder should be
        return ScanResult(cache_dir=cache_dir, notes=(str(e),))

    found: list[FoundModel] = []
    skipped: list[SkippedEntry] = []
    ignored = 0
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            ignored += 1
            continue
        for revision in _ordered_revisions(repo):
            entry = _inspect_revision(repo, revision)
            if isinstance(entry, FoundModel):
                found.append(entry)
            else:
                skipped.append(entry)

    notes = (f"ignored {ignored} dataset/space/kernel repo(s)",) if ignored else ()
    return ScanResult(
        cache_dir=cache_dir,
        found=tuple(found),
        skipped=tuple(skipped),
        warnings=tuple(str(w) for w in cache.warnings),
        notes=notes,
    )


def _ordered_revisions(repo: CachedRepoInfo) -> list[CachedRevisionInfo]:
    return sorted(
        repo.revisions,
        key=lambda r: ("main" not in r.refs, -r.last_modified, r.commit_hash),
    )


def _inspect_revision(
    repo: CachedRepoInfo, revision: CachedRevisionInfo
) -> FoundModel | SkippedEntry:
    path = revision.snapshot_path

    def skip(reason: str) -> SkippedEntry:
        return SkippedEntry(repo.repo_id, revision.commit_hash, path, reason)

    try:
        info = inspect_model_dir(path)
        if not info.supported:
            return skip(info.unsupported or "unsupported")
        record = to_record(
            info,
            slug=slugify(repo.repo_id),
            cache_path=path,
            repo_id=repo.repo_id,
            revision=revision.commit_hash,
            source=HF_SOURCE,
        )
    except InvalidInput as e:
        # Messages name the snapshot; the entry carries it already.
        return skip(e.message.removeprefix(f"{path}: ").removeprefix(f"{path}/"))
    except OSError as e:
        return skip(f"unreadable ({e.strerror or e})")
    return FoundModel(
        record=record,
        info=info,
        refs=tuple(sorted(revision.refs)),
        is_main_ref="main" in revision.refs,
        last_modified=revision.last_modified,
    )
