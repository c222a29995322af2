"""The inventory: what is on disk becomes registered models, and back.

Sits above `registry` and `store` and joins them: `init` registers every usable
model of the Hugging Face cache, `register_path` adds a folder by hand,
`check_import` vets the rows of a registry.json, and `plan_rm`/`rm` remove a
model (files only where mlxctl owns them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mlxctl import parsers
from mlxctl.errors import Conflict, InvalidInput
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.record import check_slug, slugify
from mlxctl.settings import Settings
from mlxctl.store.local.confine import adapter_dir, gguf_file, same_place, template_override
from mlxctl.store.local.hfcache import scan_hf_cache
from mlxctl.store.local.modelinfo import inspect_model_dir, to_record
from mlxctl.store.local.removal import RemovalPlan, execute_removal, plan_removal


@dataclass
class InitReport:
    cache_dir: str
    added: list[ModelRecord] = field(default_factory=list)
    unchanged: list[ModelRecord] = field(default_factory=list)
    skipped: list[dict[str, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[ModelRecord] = field(default_factory=list)


def init_from_hf_cache(registry: Registry, cache_dir: Path) -> InitReport:
    """Register every usable model in the HF cache; a second run changes nothing."""
    scan = scan_hf_cache(cache_dir)
    report = InitReport(cache_dir=str(cache_dir), warnings=[*scan.warnings, *scan.notes])
    report.skipped = [
        {"repo_id": s.repo_id, "revision": s.revision, "path": str(s.path), "reason": s.reason}
        for s in scan.skipped
    ]
    known = registry.list()
    taken = {r.slug for r in known}
    by_path = {r.cache_path: r for r in known}
    # A snapshot a store model was pulled or imported from is that model already.
    by_origin = {r.extra.get("origin"): r for r in known if r.source == "store"}
    new: list[ModelRecord] = []
    # `found` lists each repo's refs/main revision first, so it gets the plain slug.
    for found in (f.record for f in scan.found):
        origin = f"hf://{found.repo_id}@{found.revision}"
        existing = by_path.get(found.cache_path) or by_origin.get(origin)
        if existing is not None:
            report.unchanged.append(existing)
            continue
        slug = _free_slug(found, taken)
        taken.add(slug)
        new.append(replace(found, slug=slug))
    if new:
        registry.add_many(new)
    report.added = new
    seen = {f.record.cache_path for f in scan.found}
    report.missing = [
        r
        for r in known
        if r.source == "hf-cache" and r.cache_path not in seen and not Path(r.cache_path).exists()
    ]
    return report


def _free_slug(record: ModelRecord, taken: set[str]) -> str:
    # The main revision gets the plain name; other revisions (and clashes) get a suffix.
    if record.slug not in taken:
        return record.slug
    base = record.slug
    if record.revision:
        candidate = f"{base}-{record.revision[:7]}"
        if candidate not in taken:
            return candidate
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def register_path(
    registry: Registry, path: Path, *, slug: str | None = None, port: int | None = None
) -> ModelRecord:
    """Register a model folder the user keeps outside the HF cache (never deleted by rm)."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise InvalidInput(f"{path} is not a folder")
    info = inspect_model_dir(path)
    name = check_slug(slug) if slug else slugify(path.name)
    if registry.get(name) is not None:
        raise Conflict(
            f"a model named '{name}' is already registered", hint="choose another with --slug"
        )
    record = to_record(info, slug=name, cache_path=str(path), source="manual")
    record = replace(record, port=port)
    return registry.add(record)


def check_import(
    records: list[ModelRecord], settings: Settings, *, allow_commands: bool, source: str
) -> list[ModelRecord]:
    """Refuse what an imported row could do that a local edit cannot (InvalidInput).

    A registry.json is data from elsewhere: an external engine `command` runs a
    program, so it needs `allow_commands`; paths get the checks readers apply
    (store/local/confine.py): an absolute model path, template and adapter in the
    store, a plain GGUF file name, this mlxctl's store; parser names are known ones.
    """
    store_root = settings.store_dir
    for record in records:
        where = f"{source}: models.{record.slug}"
        command = record.extra.get("command")
        if command is not None and not allow_commands:
            raise InvalidInput(
                f"{where}.extra.command: {command!r} would run as a program when the model "
                "loads; nothing was imported",
                hint="import a file you trust with --allow-commands",
            )
        path = Path(record.cache_path)
        if not path.is_absolute() or ".." in path.parts:
            raise InvalidInput(f"{where}.cache_path: {record.cache_path!r} is not an absolute path")
        try:
            template_override(record, store_root)
            adapter_dir(record, store_root)
            gguf_file(record)
            parsers.check(record.tool_call_parser, record.reasoning_parser)
        except InvalidInput as e:
            raise InvalidInput(f"{where}: {e.message}", hint=e.hint) from None
        store = record.extra.get("store")
        if store is not None and not (
            isinstance(store, dict) and same_place(Path(str(store.get("root"))), store_root)
        ):
            raise InvalidInput(
                f"{where}.extra.store: {store!r} is not a model of this mlxctl's store "
                f"({store_root})",
                hint="pull or create the model here instead of importing its row",
            )
    return records


def plan_rm(
    registry: Registry, reference: str, settings: Settings
) -> tuple[ModelRecord, RemovalPlan]:
    """The model `reference` names exactly (never a prefix) and what removing it deletes."""
    record = registry.resolve_exact(reference)
    others = [r for r in registry.list() if r.slug != record.slug]
    plan = plan_removal(
        record, others, hf_cache=settings.hf_cache_dir, store_root=settings.store_dir
    )
    return record, plan


def refuse_blocked(record: ModelRecord, plan: RemovalPlan) -> None:
    if plan.blocked_by:
        raise Conflict(
            f"'{record.slug}' shares files with {', '.join(plan.blocked_by)}",
            hint="remove those models first, or keep this one",
        )


def rm(registry: Registry, record: ModelRecord, plan: RemovalPlan) -> int:
    """Unregister first, then delete files: a crash in between leaves no dangling entry."""
    refuse_blocked(record, plan)
    registry.remove(record.slug)
    return execute_removal(plan)
