"""Store commands: pull, push, create, cp, prune, login, logout, store verify.

`STORE_COMMANDS` is what `cli/main.py` registers. Each store command runs its
`mlxctl.operations.store` operation through `cli/backend.py` (the daemon when one
answers, else locally). Progress goes to stderr (rich bars on a terminal, one line
per finished item otherwise), the same for a daemon's streamed progress, so
`--json` output on stdout stays clean. `login`/`logout` keep this machine's
credentials.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import TracebackType

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

from mlxctl.cli.backend import backend
from mlxctl.cli.output import console, err_console, print_json, print_table
from mlxctl.errors import Unavailable
from mlxctl.library import build, transfer
from mlxctl.operations import store as store_ops
from mlxctl.operations.store import (
    CopyArgs,
    CreateArgs,
    PruneArgs,
    PullArgs,
    PushArgs,
    VerifyArgs,
)
from mlxctl.settings import Settings
from mlxctl.units import human_bytes

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


@click.command()
@click.argument("reference")
@click.option("--name", help="Store name (NAME[:TAG]) for the model; default: from the reference.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace a store model of the same name that came from another source.",
)
@insecure_option
@json_option
def pull(reference: str, name: str | None, force: bool, insecure: bool, as_json: bool) -> None:
    """Pull a model: org/repo[@rev] or hf://... from the Hugging Face hub,
    oci://REGISTRY/REPO[:TAG] (or REGISTRY/REPO:TAG) from an OCI registry.

    An interrupted pull resumes where it stopped when run again. A pull never
    replaces a model pulled from elsewhere (or created here) unless --force.
    """
    args = PullArgs(reference=reference, name=name, insecure=insecure, replace=force)
    with TransferProgress(enabled=not as_json) as progress:
        result = backend().run(store_ops.PULL, args, progress)
    if as_json:
        print_json(result)
        return
    console.print(
        f"Pulled {result['source']} as {result['model']} "
        f"({len(result['downloaded'])} blob(s) fetched, {len(result['reused'])} already stored)",
        markup=False,
    )


@click.command()
@click.argument("model")
@click.argument("target")
@insecure_option
@json_option
def push(model: str, target: str, insecure: bool, as_json: bool) -> None:
    """Push a model to an OCI registry: mlxctl push MODEL REGISTRY/REPO[:TAG].

    MODEL is the model's exact name (never a prefix); a model of the Hugging Face
    cache is taken into the store first (hard links, no copy). Blobs the registry
    already has are skipped; credentials come from
    `mlxctl login` or Docker's config.json (the daemon's, when a daemon pushes).
    """
    args = PushArgs(model=model, target=target, insecure=insecure)
    with TransferProgress(enabled=not as_json) as progress:
        report = backend().run(store_ops.PUSH, args, progress)
    if as_json:
        print_json(report)
        return
    if report["took_into_store"]:
        console.print(f"Took {model} into the store (hard links, no copy)", markup=False)
    console.print(
        f"Pushed {model} to {report['target']} ({report['manifest'][:19]}): "
        f"{len(report['uploaded'])} uploaded ({human_bytes(report['bytes_uploaded'])}), "
        f"{len(report['mounted'])} mounted, {len(report['skipped'])} already there",
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
    """Create a store model NAME[:TAG] from a ModelSpec; the base's blobs are shared.

    The spec is read here; with a daemon, its FROM and ADAPTER folders are read on
    the daemon's machine (relative ones from this spec's folder).
    """
    args = CreateArgs(
        name=name,
        modelspec=build.read_spec(spec_file),
        directory=str(spec_file.absolute().parent),
        source=str(spec_file),
    )
    with TransferProgress(enabled=not as_json) as progress:
        report = backend().run(store_ops.CREATE, args, progress)
    if as_json:
        print_json(report)
        return
    console.print(f"Created {report['model']} ({report['new_blobs']} new blob(s))", markup=False)


@click.command("cp")
@click.argument("source")
@click.argument("target")
def cp(source: str, target: str) -> None:
    """Give a model a new store name (no bytes copied). A model outside the store
    (e.g. from the HF cache) is imported by hard links. Copying over an existing
    name needs SOURCE's exact name."""
    copied = backend().run(store_ops.COPY, CopyArgs(source=source, target=target))
    console.print(f"Copied {source} to {copied['model']}", markup=False)


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@json_option
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete blobs no model uses and files left by interrupted pulls."""
    plan = backend().run(store_ops.PRUNE, PruneArgs(dry_run=dry_run))
    if as_json:
        print_json(plan)
        return
    for name in plan["unregistered_tags"]:
        verb = "would untag" if dry_run else "untagged"
        console.print(f"  {verb}  {name} (no registry entry)", markup=False)
    verb = "would delete" if dry_run else "deleted"
    for blob in plan["blobs"]:
        console.print(f"  {verb}  {blob['digest']}", markup=False)
    for leftover in plan["leftovers"]:
        console.print(f"  {verb}  {Path(leftover['path']).name}", markup=False)
    if plan["model_dirs"]:
        console.print(f"  {len(plan['model_dirs'])} unused model folder(s)", markup=False)
    if dry_run:
        console.print(f"Would free {human_bytes(plan['freed_bytes'])}")
    else:
        console.print(f"Freed {human_bytes(plan['freed'])}")


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
    with TransferProgress(enabled=not as_json) as progress:
        report = backend().run(store_ops.VERIFY, VerifyArgs(models=models), progress)
    if as_json:
        print_json(report)
    else:
        rows = [
            (
                c["name"],
                "ok" if c["ok"] else "DAMAGED",
                c["error"] or "; ".join(f"{p['file']}: {p['problem']}" for p in c["problems"]),
            )
            for c in report["models"]
        ]
        print_table(["MODEL", "STATUS", "PROBLEMS"], rows)
        console.print(
            f"{report['blobs_checked']} blob(s), {human_bytes(report['bytes_checked'])} checked"
        )
    if not report["ok"]:
        bad = sum(not c["ok"] for c in report["models"])
        raise Unavailable(
            f"{bad} of {len(report['models'])} store model(s) have damaged or missing blobs",
            hint="pull them again to repair, or remove them; `mlxctl prune` deletes the "
            "damaged copies",
        )


STORE_COMMANDS = (pull, push, create, cp, prune, login, logout, store)
