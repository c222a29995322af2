"""Store commands: pull, push, create, cp, prune, login, logout, store verify.

`STORE_COMMANDS` is what `cli/main.py` registers; `print_modelfile` backs
`mlxctl show MODEL --modelfile`. Progress goes to stderr (rich bars on a
terminal, one line per finished item otherwise), so `--json` output on stdout
stays clean.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBars

from mlxctl.cli.output import console, err_console, human_bytes, print_json, print_table
from mlxctl.errors import Unavailable
from mlxctl.library import build, catalog, transfer
from mlxctl.registry import Registry, open_registry
from mlxctl.settings import Settings
from mlxctl.store.garbage import PrunePlan, execute_prune, plan_prune
from mlxctl.store.integrity import verify_store
from mlxctl.store.layout import StoreLayout
from mlxctl.store.tags import ModelName

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
insecure_option = click.option(
    "--insecure", is_flag=True, help="Use plain http (always on for localhost and 127.0.0.1)."
)


class TransferProgress:
    """The store's `Progress` sink drawn with rich: bytes, rate and ETA per item."""

    def __init__(self, enabled: bool = True) -> None:
        self.live = enabled and err_console.is_terminal
        self.bars = RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not self.live,
        )
        self.quiet = not enabled
        self._tasks: dict[str, TaskID] = {}
        self._labels: dict[str, str] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> TransferProgress:
        self.bars.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.__exit__(kind, exc, tb)

    def start(self, key: str, label: str, total: int | None, done: int = 0) -> None:
        with self._lock:
            if key not in self._tasks:
                self._labels[key] = escape(label[:40])  # file names are not markup
                self._tasks[key] = self.bars.add_task(
                    self._labels[key], total=total, completed=done
                )

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self.bars.update(task, completed=done, total=total)  # None keeps the total

    def finish(self, key: str, note: str = "") -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        label = self._labels[key]
        if self.live:
            self.bars.update(task, description=f"{label} [dim]{note}[/dim]")
        elif not self.quiet:
            err_console.print(f"  {label}: {note}", highlight=False)


def _open() -> tuple[Settings, Registry, StoreLayout]:
    settings = Settings.from_env()
    return settings, open_registry(settings), catalog.open_store(settings)


@click.command()
@click.argument("reference")
@click.option("--name", help="Store name (NAME[:TAG]) for the model; default: from the reference.")
@insecure_option
@json_option
def pull(reference: str, name: str | None, insecure: bool, as_json: bool) -> None:
    """Pull a model: org/repo[@rev] or hf://... from the Hugging Face hub,
    oci://REGISTRY/REPO[:TAG] (or REGISTRY/REPO:TAG) from an OCI registry.

    An interrupted pull resumes where it stopped when run again.
    """
    settings, registry, layout = _open()
    with TransferProgress(enabled=not as_json) as progress:
        result = transfer.pull(
            registry, layout, settings, reference, name=name, insecure=insecure, progress=progress
        )
    if as_json:
        print_json(
            {
                "model": result.record.slug,
                "name": str(result.name),
                "source": result.source,
                "manifest": result.manifest_digest,
                "downloaded": result.downloaded,
                "reused": result.reused,
                "resumed": result.resumed,
                "cache_path": result.record.cache_path,
            }
        )
        return
    console.print(
        f"Pulled {result.source} as {result.record.slug} "
        f"({len(result.downloaded)} blob(s) fetched, {len(result.reused)} already stored)",
        markup=False,
    )


@click.command()
@click.argument("model")
@click.argument("target")
@insecure_option
@json_option
def push(model: str, target: str, insecure: bool, as_json: bool) -> None:
    """Push a store model to an OCI registry: mlxctl push NAME REGISTRY/REPO[:TAG].

    Blobs the registry already has are skipped; credentials come from
    `mlxctl login` or Docker's config.json.
    """
    settings, registry, layout = _open()
    with TransferProgress(enabled=not as_json) as progress:
        report = transfer.push(
            registry, layout, settings, model, target, insecure=insecure, progress=progress
        )
    if as_json:
        print_json(
            {
                "target": str(report.target),
                "manifest": report.manifest_digest,
                "uploaded": report.uploaded,
                "mounted": report.mounted,
                "skipped": report.skipped,
                "bytes_uploaded": report.bytes_uploaded,
            }
        )
        return
    console.print(
        f"Pushed {model} to {report.target} ({report.manifest_digest[:19]}): "
        f"{len(report.uploaded)} uploaded ({human_bytes(report.bytes_uploaded)}), "
        f"{len(report.mounted)} mounted, {len(report.skipped)} already there",
        markup=False,
    )


@click.command()
@click.argument("name")
@click.option(
    "-f",
    "--file",
    "spec_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("ModelSpec"),
    show_default=True,
    help="The ModelSpec to build from (see docs/modelspec.md).",
)
@json_option
def create(name: str, spec_file: Path, as_json: bool) -> None:
    """Create a store model NAME[:TAG] from a ModelSpec; the base's blobs are shared."""
    _, registry, layout = _open()
    report = build.create(registry, layout, name, spec_file)
    if as_json:
        print_json(
            {
                "model": report.record.slug,
                "manifest": report.manifest_digest,
                "new_blobs": report.new_blobs,
                "cache_path": report.record.cache_path,
            }
        )
        return
    console.print(f"Created {report.record.slug} ({report.new_blobs} new blob(s))", markup=False)


@click.command("cp")
@click.argument("source")
@click.argument("target")
def cp(source: str, target: str) -> None:
    """Give a model a new store name (no bytes copied). A model outside the store
    (e.g. from the HF cache) is imported by hard links."""
    _, registry, layout = _open()
    record = catalog.copy(registry, layout, source, target)
    console.print(f"Copied {source} to {record.slug}", markup=False)


def _prune_data(plan: PrunePlan) -> dict[str, Any]:
    return {
        "unregistered_tags": [str(n) for n in plan.tags],
        "blobs": [{"digest": d, "freed_bytes": n} for d, n in plan.blobs],
        "leftovers": [{"path": str(p), "bytes": n} for p, n in plan.leftovers],
        "model_dirs": [str(p) for p in plan.model_dirs],
        "freed_bytes": plan.freed_bytes,
    }


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@json_option
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete blobs no model uses and files left by interrupted pulls."""
    _, registry, layout = _open()
    plan = plan_prune(layout, catalog.orphan_tags(registry, layout))
    freed = None if dry_run else execute_prune(layout, plan)
    if not dry_run and freed is None:
        raise Unavailable(
            "a pull or create is writing to the store; nothing was pruned",
            hint="run mlxctl prune again when it has finished",
        )
    if as_json:
        print_json({**_prune_data(plan), "dry_run": dry_run, "freed": freed or 0})
        return
    for name in plan.tags:
        verb = "would untag" if dry_run else "untagged"
        console.print(f"  {verb}  {name} (no registry entry)", markup=False)
    for digest, _ in plan.blobs:
        console.print(f"  {'would delete' if dry_run else 'deleted'}  {digest}", markup=False)
    for path, _ in plan.leftovers:
        console.print(f"  {'would delete' if dry_run else 'deleted'}  {path.name}", markup=False)
    if plan.model_dirs:
        console.print(f"  {len(plan.model_dirs)} unused model folder(s)", markup=False)
    if dry_run:
        console.print(f"Would free {human_bytes(plan.freed_bytes)}")
    else:
        console.print(f"Freed {human_bytes(freed)}")


@click.command()
@click.argument("registry_host", metavar="REGISTRY")
@click.option("-u", "--username", help="User name (asked when missing).")
@click.option(
    "-p",
    "--password",
    help="Password or token (asked when missing; on the command line it lands in shell "
    "history: prefer --password-stdin).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@insecure_option
def login(
    registry_host: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    insecure: bool,
) -> None:
    """Log in to an OCI registry; the credentials are checked, then saved (mode 0600)."""
    if password is not None:
        err_console.print(
            "[yellow]warning:[/yellow] --password puts the password in your shell history "
            "and in the process list; pipe it in with --password-stdin instead "
            f"(e.g. `cat token.txt | mlxctl login {escape(registry_host)} -u USER "
            "--password-stdin`)"
        )
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    username = username or click.prompt("Username")
    password = password or click.prompt("Password", hide_input=True)
    host = transfer.login(
        Settings.from_env(), registry_host, username or "", password or "", insecure=insecure
    )
    console.print(f"Login succeeded for {host}", markup=False)


@click.command()
@click.argument("registry_host", metavar="REGISTRY")
def logout(registry_host: str) -> None:
    """Forget the credentials `mlxctl login` saved for a registry."""
    removed = transfer.logout(Settings.from_env(), registry_host)
    console.print(
        f"Logged out of {registry_host}" if removed else f"Not logged in to {registry_host}",
        markup=False,
    )


@click.group("store")
def store() -> None:
    """The model store: verify blobs (see also pull, push, create, cp, prune)."""


@store.command("verify")
@click.argument("models", nargs=-1)
@json_option
def verify(models: tuple[str, ...], as_json: bool) -> None:
    """Re-hash the blobs of MODELS (default: all store models) and report damage.

    Damaged blobs are moved aside so they are never loaded or served, and the
    registry marks the models using them; pull a model again to repair it.
    """
    _, registry, layout = _open()
    names: list[ModelName] | None = None
    if models:
        names = [catalog.require_store_model(registry, layout, m) for m in models]
    report = verify_store(layout, names)
    catalog.mark_integrity(
        registry, {str(c.name): [p.title for p in c.problems] for c in report.models}
    )
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "blobs_checked": report.blobs_checked,
                "bytes_checked": report.bytes_checked,
                "models": [
                    {
                        "name": str(c.name),
                        "ok": c.ok,
                        "error": c.error,
                        "problems": [
                            {"digest": p.digest, "file": p.title, "problem": p.problem}
                            for p in c.problems
                        ],
                    }
                    for c in report.models
                ],
                "quarantined": [str(p) for p in report.quarantined],
            }
        )
    else:
        rows = [
            (
                str(c.name),
                "ok" if c.ok else "DAMAGED",
                c.error or "; ".join(f"{p.title}: {p.problem}" for p in c.problems),
            )
            for c in report.models
        ]
        print_table(["MODEL", "STATUS", "PROBLEMS"], rows)
        console.print(
            f"{report.blobs_checked} blob(s), {human_bytes(report.bytes_checked)} checked"
        )
    if not report.ok:
        bad = sum(not c.ok for c in report.models)
        raise Unavailable(
            f"{bad} of {len(report.models)} store model(s) have damaged or missing blobs",
            hint="pull them again to repair, or remove them; `mlxctl prune` deletes the "
            "damaged copies",
        )


def print_modelfile(reference: str) -> None:
    """`mlxctl show MODEL --modelfile`: the ModelSpec that builds this model."""
    _, registry, layout = _open()
    click.echo(build.modelfile(registry, layout, reference), nl=False)


STORE_COMMANDS = (pull, push, create, cp, prune, login, logout, store)
