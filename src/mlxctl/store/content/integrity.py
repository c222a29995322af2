"""Re-hashing the store: which tagged models still have intact blobs.

`verify_store` reads every blob the chosen tags use (each once, however many
tags share it) and reports missing, truncated or altered ones per model. It
never raises for what it finds. A damaged blob is moved aside to
`.corrupt-sha256-...` (kept for inspection until `mlxctl prune`), so nothing
named by its digest holds wrong bytes: the model's folder then has a dangling
link and refuses to load, and the next pull of the model downloads the blob
again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlxctl.errors import InvalidInput, NotFound
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.tags import ModelName
from mlxctl.store.progress import NoProgress, Progress


@dataclass(frozen=True)
class BlobProblem:
    digest: str
    title: str  # the file it is in the model folder ("config" for the config blob)
    problem: str  # "missing", "size 10, expected 12", "contents hash to sha256:..."


@dataclass(frozen=True)
class ModelCheck:
    name: ModelName
    manifest_digest: str | None
    problems: tuple[BlobProblem, ...] = ()
    error: str | None = None  # the manifest itself could not be read

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None


@dataclass
class VerifyReport:
    models: list[ModelCheck] = field(default_factory=list)
    blobs_checked: int = 0
    bytes_checked: int = 0
    quarantined: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.models)


def verify_store(
    layout: StoreLayout,
    names: list[ModelName] | None = None,
    *,
    quarantine: bool = True,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check `names` (default: every tag); damaged blobs are moved aside when `quarantine`."""
    progress = progress or NoProgress()
    report = VerifyReport()
    seen: dict[str, str | None] = {}
    for name in names if names is not None else layout.tags.names():
        try:
            manifest, digest = layout.manifest(name)
        except (InvalidInput, NotFound) as e:
            report.models.append(ModelCheck(name, None, error=e.message))
            continue
        problems: list[BlobProblem] = []
        for descriptor in manifest.blobs():
            if descriptor.digest not in seen:
                key = descriptor.digest
                progress.start(key, descriptor.title or "config", descriptor.size)
                found = layout.blobs.problem(descriptor.digest, descriptor.size)
                progress.finish(key, found or "ok")
                seen[descriptor.digest] = found
                report.blobs_checked += 1
                report.bytes_checked += descriptor.size
                if found is not None and found != "missing" and quarantine:
                    moved = layout.blobs.quarantine(descriptor.digest)
                    if moved is not None:
                        report.quarantined.append(moved)
            problem = seen[descriptor.digest]
            if problem is not None:
                problems.append(
                    BlobProblem(descriptor.digest, descriptor.title or "config", problem)
                )
        report.models.append(ModelCheck(name, digest, tuple(problems)))
    return report
