"""Slot commands: load/unload on a fixed port, unload-all, reconcile, verify, the slot table.

`load MODEL PORT|ALIAS` and `unload PORT|ALIAS` live in `cli/daemon.py` beside the
on-demand `load`/`unload` and call in here; all of them talk to the daemon's
`/api/admin/slots` API, so they work remotely with MLXCTL_HOST + MLXCTL_API_KEY.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from mlxctl.cli.output import console, print_json, print_table
from mlxctl.client import DaemonClient

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def load_slot(client: DaemonClient, model: str, slot: str, force: bool, as_json: bool) -> None:
    row = client.load_slot(model, slot, force)
    if as_json:
        print_json(row)
        return
    stopped = row.get("stopped")
    if stopped:
        console.print(
            f"Stopped {stopped.get('kind')} pid {stopped.get('pid')} on port {row['port']}"
        )
    live = row.get("live") or {}
    console.print(
        f"Loaded {row.get('desired')} on slot {row['port']} ({row['alias']}), pid {live.get('pid')}"
    )


def unload_slot(client: DaemonClient, slot: str, as_json: bool) -> None:
    row = client.unload_slot(slot)
    if as_json:
        print_json(row)
    elif row.get("unloaded"):
        stopped = f" (stopped pid {row['stopped_pid']})" if row.get("stopped_pid") else ""
        console.print(
            f"Unloaded {row['unloaded']} from slot {row['port']} ({row['alias']}){stopped}"
        )
    elif row.get("stopped_pid"):
        where = f"slot {row['port']} ({row['alias']})"
        pid = row["stopped_pid"]
        console.print(f"Stopped the MLX server on {where}, no model assigned (stopped pid {pid})")
    else:
        console.print(f"Slot {row['port']} ({row['alias']}) had no model assigned")


def print_slots(slots: list[dict[str, Any]]) -> None:
    rows = []
    for slot in slots:
        live = slot.get("live") or {}
        drift = "; ".join(slot.get("drift") or [])
        state = "-" if not live else ("live" if live.get("healthy") else "unhealthy")
        rows.append(
            (
                slot["port"],
                slot["alias"],
                slot.get("desired") or "-",
                live.get("model") or "-",
                live.get("pid") or "-",
                state,
                f"[red]{drift}[/red]" if drift else "ok",
            )
        )
    print_table(["PORT", "ALIAS", "DESIRED", "LIVE", "PID", "STATE", "DRIFT"], rows)


@click.command("unload-all")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def unload_all(yes: bool, as_json: bool) -> None:
    """Unload every slot: clear the assignments and stop every MLX server on a slot port."""
    if not yes and sys.stdin.isatty():
        click.confirm("Stop every slot worker and clear every assignment?", abort=True)
    with DaemonClient.from_settings() as client:
        result = client.unload_all()
    if as_json:
        print_json(result)
        return
    for entry in result["unloaded"]:
        stopped = f" (stopped pid {entry['stopped_pid']})" if entry.get("stopped_pid") else ""
        console.print(
            f"Unloaded {entry['model'] or '(nothing)'} from slot {entry['slot']}{stopped}"
        )
    if not result["unloaded"]:
        console.print("No slot had a model.")


@click.command()
@json_option
def reconcile(as_json: bool) -> None:
    """Make the slots match the registry now: restart dead workers, report what cannot be fixed."""
    with DaemonClient.from_settings() as client:
        result = client.reconcile()
    if as_json:
        print_json(result)
        return
    for action in result["actions"]:
        outcome = "done" if action.get("ok") else f"failed: {action.get('error')}"
        model = f" {action['model']}" if action.get("model") else ""
        console.print(
            f"slot {action['slot']}: {action['action']}{model} ({action['reason']}) {outcome}"
        )
    for problem in result["unfixable"]:
        console.print(f"[red]slot {problem['slot']}: {problem['problem']}[/red]")
    if not result["actions"] and not result["unfixable"]:
        console.print("Slots match the registry.")
    print_slots(result["slots"])
    if result["unfixable"]:
        raise SystemExit(1)


@click.command()
@click.option("--strict", is_flag=True, help="Also fail on warnings (not running, no audit line).")
@json_option
def verify(strict: bool, as_json: bool) -> None:
    """Check each slot's model has the settings it needs and runs with the registry's
    settings, and that config.yaml names registered models and existing files."""
    with DaemonClient.from_settings() as client:
        result = client.verify(strict)
        result["config_problems"] = client.config()["problems"]
    result["ok"] = result["ok"] and not result["config_problems"]
    if as_json:
        print_json(result)
    else:
        for line in result["config_problems"]:
            console.print(f"[red]config: {line}[/red]")
        for problem in result["problems"]:
            console.print(
                f"[red]slot {problem['slot']} ({problem['model']}): {problem['problem']}[/red]"
            )
        if result["ok"]:
            console.print("All slots verified.")
    if not result["ok"]:
        raise SystemExit(1)


SLOT_COMMANDS = [unload_all, reconcile, verify]
