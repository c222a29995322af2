"""Removing a model's files: planned first, then executed.

`plan_removal` is a dry run: it says which paths would go, how many bytes that
frees, and which other registered models would lose files (then it is blocked
and deletes nothing). `execute_removal` carries the plan out and is safe to run
twice. Only Hugging Face cache snapshots are ever deleted; a folder the user
registered by path (`source="manual"`, or any other source) is left in place.
Files are deleted only inside the HF cache and the store mlxctl manages: a row
naming a snapshot or store elsewhere (an imported registry.json can) is
unregistered and its files kept, with a note saying so.

For cache snapshots the plan is huggingface_hub's own `delete_revisions`
strategy, scoped to the one repo: the snapshot, the refs naming it, and the
blobs no other snapshot of the repo links to. Blobs another snapshot still
links are kept whether or not that snapshot is registered, so two registered
revisions sharing a tokenizer never block each other. The last snapshot of a
repo takes the whole `models--org--name` folder with it.

Store models (`source="store"`) go through `store.content.garbage`: the tag, the model
folder of links when no other tag shares it, and the blobs no other tag uses;
blobs another tag uses are `kept`, never a reason to block.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from huggingface_hub import (
    CachedRepoInfo,
    CachedRevisionInfo,
    DeleteCacheStrategy,
    HFCacheInfo,
    scan_cache_dir,
)
from huggingface_hub.errors import CacheNotFound

from mlxctl.errors import Conflict, InvalidInput
from mlxctl.registry.record import ModelRecord
from mlxctl.store.content.garbage import UntagPlan, execute_untag, plan_untag
from mlxctl.store.content.layout import STORE_SOURCE, StoreLayout
from mlxctl.store.content.tags import parse_name
from mlxctl.store.local.confine import is_inside, same_place
from mlxctl.store.local.hfcache import HF_SOURCE

_MAX_LINK_HOPS = 40


@dataclass(frozen=True)
class RemovalPlan:
    """What removing one model would delete; nothing has been touched yet.

    `deletes` lists whole paths in execution order (repo folders, snapshots,
    refs, blobs); `kept` lists blobs the model uses that stay because another
    snapshot links them. When `blocked_by` is non-empty the plan deletes
    nothing and `execute_removal` refuses it. `notes` explain, in one line
    each, why files are left in place.
    """

    slug: str
    source: str
    deletes: tuple[Path, ...] = ()
    kept: tuple[Path, ...] = ()
    freed_bytes: int = 0
    blocked_by: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    strategy: DeleteCacheStrategy | None = field(default=None, repr=False, compare=False)
    untag: UntagPlan | None = field(default=None, repr=False, compare=False)

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)

    @property
    def deletes_files(self) -> bool:
        return bool(self.deletes) and not self.blocked


def plan_removal(
    record: ModelRecord, others: Sequence[ModelRecord], *, hf_cache: Path, store_root: Path
) -> RemovalPlan:
    """Plan the removal of `record`'s files, checked against the `others` registered.

    Reads the filesystem, changes nothing. `others` may include `record`
    itself (matched by slug, then ignored). Never raises for a missing or
    corrupted cache entry: the plan deletes nothing and says why in `notes`.
    Only files under `hf_cache` and `store_root` are ever planned for deletion.
    """
    if record.source == STORE_SOURCE:
        return _plan_store_removal(record, store_root)
    if record.source != HF_SOURCE:
        origin = "registered by path" if record.source == "manual" else f"source {record.source!r}"
        return RemovalPlan(
            slug=record.slug,
            source=record.source,
            notes=(
                f"{origin} ({record.cache_path}): its files are left in place, "
                "only the registry entry is removed",
            ),
        )
    keep = RemovalPlan(slug=record.slug, source=record.source)
    snapshot = Path(record.cache_path).expanduser().resolve()
    if not is_inside(snapshot, hf_cache):
        note = f"{snapshot} is outside the Hugging Face cache ({hf_cache}): its files are kept"
        return replace(keep, notes=(note,))
    found = _find_revision(snapshot)
    if isinstance(found, str):
        return replace(keep, notes=(found,))
    cache_dir, repo, revision = found
    # Scoped to this repo: commit hashes are only unique per repo in hand-built caches.
    scoped = HFCacheInfo(
        size_on_disk=repo.size_on_disk,
        repos=frozenset({repo}),
        incomplete_files=frozenset(),
        warnings=[],
        cache_dir=cache_dir,
    )
    strategy = scoped.delete_revisions(revision.commit_hash)
    blocked_by = tuple(
        other.slug
        for other in others
        if other.slug != record.slug and _uses_any(Path(other.cache_path), strategy)
    )
    if blocked_by:
        return replace(
            keep,
            blocked_by=blocked_by,
            notes=(f"files of '{record.slug}' are also used by: {', '.join(blocked_by)}",),
        )
    linked = {f.blob_path for f in revision.files} - {f.file_path for f in revision.files}
    return RemovalPlan(
        slug=record.slug,
        source=record.source,
        deletes=tuple(
            path
            for group in (strategy.repos, strategy.snapshots, strategy.refs, strategy.blobs)
            for path in sorted(group)
        ),
        kept=() if strategy.repos else tuple(sorted(linked - strategy.blobs)),
        freed_bytes=strategy.expected_freed_size + _uncounted_bytes(repo, strategy),
        strategy=strategy,
    )


def execute_removal(plan: RemovalPlan) -> int:
    """Carry out `plan` and return the bytes actually freed.

    Paths already gone are skipped, so running a plan twice frees 0 the second
    time. A blocked plan raises `Conflict` before anything is deleted. The plan
    is not re-checked: execute it right after planning, as huggingface_hub does.
    """
    if plan.blocked:
        raise Conflict(
            f"model '{plan.slug}' shares files with {', '.join(plan.blocked_by)}; "
            "nothing was deleted",
            hint="Remove those models first, or unregister this one without deleting files.",
        )
    if plan.untag is not None:
        freed, _ = execute_untag(StoreLayout(plan.untag.root), plan.untag)
        return freed
    if plan.strategy is None:
        return 0
    before = _real_files(plan.deletes)
    # huggingface_hub logs a warning per missing path; drop them up front instead.
    live = replace(
        plan.strategy,
        repos=_existing(plan.strategy.repos),
        snapshots=_existing(plan.strategy.snapshots),
        refs=_existing(plan.strategy.refs),
        blobs=_existing(plan.strategy.blobs),
    )
    live.execute()
    return sum(size for path, size in before.items() if not os.path.lexists(path))


def _plan_store_removal(record: ModelRecord, store_root: Path) -> RemovalPlan:
    keep = RemovalPlan(slug=record.slug, source=record.source)
    store = record.extra.get("store")
    try:
        if not isinstance(store, dict):
            raise InvalidInput("no store entry")
        root = Path(str(store["root"]))
        if not same_place(root, store_root):
            note = f"store {root} is not mlxctl's store ({store_root}): its files are kept"
            return replace(keep, notes=(note,))
        layout = StoreLayout(root)
        untag = plan_untag(layout, parse_name(str(store["name"])))
    except (InvalidInput, KeyError) as e:
        why = e.message if isinstance(e, InvalidInput) else f"missing {e}"
        note = f"store entry of '{record.slug}' is unreadable ({why}); left in place"
        return replace(keep, notes=(note,))
    notes: tuple[str, ...] = ()
    if untag.manifest_digest is None:
        notes = (f"tag {untag.name} is already gone from the store",)
    elif untag.unreadable:
        unreadable = ", ".join(map(str, untag.unreadable))
        notes = (f"its blobs stay: tag {unreadable} cannot be read, so what it uses is unknown",)
    elif untag.kept:
        notes = (f"{len(untag.kept)} blob(s) stay: other tags use them",)
    return RemovalPlan(
        slug=record.slug,
        source=record.source,
        deletes=untag.deletes(layout) if untag.manifest_digest else (),
        kept=tuple(layout.blobs.path(d) for d in untag.kept),
        freed_bytes=untag.freed_bytes,
        notes=notes,
        untag=untag,
    )


def _find_revision(
    snapshot: Path,
) -> tuple[Path | None, CachedRepoInfo, CachedRevisionInfo] | str:
    """The scanned cache entry for `snapshot`, or a note saying why there is none."""
    repo_dir = snapshot.parent.parent
    if snapshot.parent.name != "snapshots" or "--" not in repo_dir.name:
        return f"{snapshot} is not a Hugging Face cache snapshot; left in place"
    if not snapshot.is_dir():
        return f"{snapshot} is already gone"
    try:
        cache = scan_cache_dir(repo_dir.parent)
    except (CacheNotFound, ValueError) as e:
        return f"cannot scan the cache: {e}"
    for repo in cache.repos:
        if repo.repo_path.name != repo_dir.name:
            continue
        for revision in repo.revisions:
            if revision.snapshot_path == snapshot:
                return cache.cache_dir, repo, revision
    problems = [str(w) for w in cache.warnings if repo_dir.name in str(w)]
    why = problems[0] if problems else "snapshot not found by the cache scan"
    return f"cache entry {repo_dir.name} is corrupted ({why}); left in place, delete it by hand"


def _uses_any(root: Path, strategy: DeleteCacheStrategy) -> bool:
    """Whether a file under `root`, or a link it follows, is one the strategy deletes."""
    files = strategy.blobs | strategy.refs
    dirs = strategy.repos | strategy.snapshots
    for entry in _entries(root):
        for hop in _link_chain(entry):
            if hop in files or any(d == hop or d in hop.parents for d in dirs):
                return True
    return False


def _entries(root: Path) -> Iterator[Path]:
    if not os.path.lexists(root):
        return
    yield root
    if root.is_symlink() or not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            yield Path(dirpath, name)


def _link_chain(path: Path) -> list[Path]:
    """`path` and every symlink target it leads through, with real parent folders."""
    chain: list[Path] = []
    current = _normalized(path)
    for _ in range(_MAX_LINK_HOPS):
        chain.append(current)
        if not current.is_symlink():
            break
        current = _normalized(current.parent / os.readlink(current))
    return chain


def _normalized(path: Path) -> Path:
    # Resolve the folders but not the name itself, so a symlink stays itself.
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def _real_files(paths: Sequence[Path]) -> dict[Path, int]:
    """Real file behind every entry under `paths` → its size, each counted once."""
    real: dict[Path, int] = {}
    for root in paths:
        for entry in _entries(root):
            try:
                target = entry.resolve(strict=True)
                if target.is_file():
                    real[target] = target.stat().st_size
            except (OSError, RuntimeError):
                continue  # broken link or loop: no bytes behind it
    return real


def _uncounted_bytes(repo: CachedRepoInfo, strategy: DeleteCacheStrategy) -> int:
    """Bytes huggingface_hub's estimate leaves out, so the plan matches what goes.

    It counts linked blobs only: add the refs files and, when the whole repo
    folder goes, every file no snapshot links (orphan blobs, partial downloads).
    """
    if repo.repo_path not in strategy.repos:
        return sum(_regular_size(p) for p in strategy.refs)
    linked = {f.blob_path for revision in repo.revisions for f in revision.files}
    return sum(_regular_size(p) for p in _entries(repo.repo_path) if p not in linked)


def _regular_size(path: Path) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _existing(paths: frozenset[Path]) -> frozenset[Path]:
    return frozenset(p for p in paths if os.path.lexists(p))
