"""What nothing references any more: planned, then deleted.

`plan_untag` is the store half of `mlxctl rm NAME`: the tag file, the model
folder when no other tag shares the manifest, and the blobs no other tag uses.
`plan_prune` finds everything unreferenced: blobs no tag uses, model folders
of untagged manifests, and files left by interrupted writes; given `orphans`
(tags the caller found no registry row for), it removes those tags too, but
not one written in the last minute (a pull between its tag and its registry
row). Both are frozen plans with the bytes they free; the execute functions
re-check references at deletion time, so a tag created in between keeps its blobs.

Both fail closed: while any tag cannot be read, what it uses is unknown, so
prune stops and untag keeps every blob (`UnreadableTag` names the tag).

Freed bytes count a blob only when the store holds its last link: a blob
imported from the Hugging Face cache by hard link frees nothing while the
cache still has it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlxctl.store.content.blobs import remove_tree
from mlxctl.store.content.layout import StoreLayout, UnreadableTag
from mlxctl.store.content.manifest import digest_of
from mlxctl.store.content.tags import ModelName

_TAG_TEMP_AGE = 60.0  # seconds: a younger tag (or temp file) may belong to a running write


def released_bytes(path: Path) -> int:
    """Bytes deleting `path` gives back: 0 when another hard link keeps them."""
    try:
        st = path.stat()
    except OSError:
        return 0
    return st.st_size if st.st_nlink <= 1 else 0


@dataclass(frozen=True)
class UntagPlan:
    root: Path  # the store folder
    name: ModelName
    tag_file: Path
    manifest_digest: str | None
    model_dir: Path | None  # None: another tag shares the manifest (or none was built)
    blobs: tuple[str, ...] = ()  # freed: used by no other tag
    kept: tuple[str, ...] = ()  # still used by another tag
    freed_bytes: int = 0
    unreadable: tuple[ModelName, ...] = ()  # tags that stop blob deletion (all blobs kept)

    def deletes(self, layout: StoreLayout) -> tuple[Path, ...]:
        paths = [self.tag_file]
        if self.model_dir is not None:
            paths.append(self.model_dir)
        return (*paths, *(layout.blobs.path(d) for d in self.blobs))


def plan_untag(layout: StoreLayout, name: ModelName) -> UntagPlan:
    """Reads the store, changes nothing; a tag already gone gives an empty plan."""
    data = layout.tags.read(name)
    if data is None:
        return UntagPlan(
            root=layout.root,
            name=name,
            tag_file=layout.tags.path(name),
            manifest_digest=None,
            model_dir=None,
        )
    manifest_digest = digest_of(data)
    manifest, _ = layout.manifest(name)
    mine = {d.digest for d in manifest.blobs()}
    unreadable: tuple[ModelName, ...] = ()
    try:
        others = _references_without(layout, name)
    except UnreadableTag as e:
        others, unreadable = mine, e.names
    freed = tuple(sorted(d for d in mine if d not in others))
    shares_manifest = any(n != name for n in layout.manifest_digests().get(manifest_digest, set()))
    model_dir = layout.model_dir(manifest_digest)
    return UntagPlan(
        root=layout.root,
        name=name,
        tag_file=layout.tags.path(name),
        manifest_digest=manifest_digest,
        model_dir=None if shares_manifest or not model_dir.exists() else model_dir,
        blobs=freed,
        kept=tuple(sorted(mine - set(freed))),
        freed_bytes=sum(released_bytes(layout.blobs.path(d)) for d in freed),
        unreadable=unreadable,
    )


def execute_untag(layout: StoreLayout, plan: UntagPlan) -> tuple[int, bool]:
    """Remove the tag, then its folder and blobs; (bytes freed, blobs deleted).

    While a pull or create holds the store, blobs are left for `mlxctl prune`
    (the second value is then False); the tag and folder go either way.
    """
    layout.tags.remove(plan.name)
    if plan.model_dir is not None and plan.manifest_digest not in layout.manifest_digests():
        remove_tree(plan.model_dir)
    with layout.collecting() as exclusive:
        if not exclusive:
            return 0, False
        try:
            still_used = layout.references()
        except UnreadableTag:
            return 0, False  # fail closed: `prune` says which tag, once it is fixed
        freed = 0
        for digest in plan.blobs:
            if digest not in still_used:
                path = layout.blobs.path(digest)
                released = released_bytes(path)
                if layout.blobs.remove(digest):
                    freed += released
        return freed, True


@dataclass(frozen=True)
class PrunePlan:
    tags: tuple[ModelName, ...] = ()  # orphan tags: removed first
    blobs: tuple[tuple[str, int], ...] = ()  # (digest, bytes released)
    leftovers: tuple[tuple[Path, int], ...] = ()  # temp, partial and quarantined files
    model_dirs: tuple[Path, ...] = ()  # folders of manifests no tag names
    tag_temps: tuple[Path, ...] = ()

    @property
    def freed_bytes(self) -> int:
        return sum(n for _, n in self.blobs) + sum(n for _, n in self.leftovers)

    @property
    def empty(self) -> bool:
        return not (self.tags or self.blobs or self.leftovers or self.model_dirs or self.tag_temps)


def plan_prune(layout: StoreLayout, orphans: tuple[ModelName, ...] = ()) -> PrunePlan:
    """Reads the store, changes nothing; raises `UnreadableTag` rather than guess."""
    now = time.time()
    orphans = tuple(n for n in orphans if _settled(layout, n, now))
    used = _references_without(layout, *orphans)
    blobs = tuple(
        (digest, released_bytes(layout.blobs.path(digest)))
        for digest in sorted(layout.blobs.digests())
        if digest not in used
    )
    live_dirs = {
        layout.model_dir(d)
        for d, names in layout.manifest_digests().items()
        if names - set(orphans)
    }
    return PrunePlan(
        tags=orphans,
        blobs=blobs,
        leftovers=tuple(layout.blobs.leftovers()),
        model_dirs=tuple(p for p in layout.model_dirs() if p not in live_dirs),
        tag_temps=tuple(p for p in layout.tags.leftovers() if now - _mtime(p) > _TAG_TEMP_AGE),
    )


def execute_prune(layout: StoreLayout, plan: PrunePlan) -> int | None:
    """Delete what `plan` lists and is still unreferenced; bytes freed.

    None when a pull or create is writing to the store: nothing was deleted.
    """
    with layout.collecting() as exclusive:
        if not exclusive:
            return None
        layout.references()  # an unreadable tag stops everything before anything goes
        now = time.time()
        for name in plan.tags:
            if _settled(layout, name, now):  # rewritten since the plan: a pull owns it now
                layout.tags.remove(name)
        used = layout.references()
        live_dirs = {layout.model_dir(d) for d in layout.manifest_digests()}
        freed = 0
        for digest, released in plan.blobs:
            if digest not in used and layout.blobs.remove(digest):
                freed += released
        for path, size in plan.leftovers:
            if _unlink(path):
                freed += size
        for folder in plan.model_dirs:
            if folder not in live_dirs:
                remove_tree(folder)
        for path in plan.tag_temps:
            _unlink(path)
        return freed


def _references_without(layout: StoreLayout, *excluded: ModelName) -> set[str]:
    return {d for d, names in layout.references().items() if names - set(excluded)}


def _settled(layout: StoreLayout, name: ModelName, now: float) -> bool:
    """An orphan tag older than a running pull could be (its registry row may follow)."""
    return now - _mtime(layout.tags.path(name)) > _TAG_TEMP_AGE


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
