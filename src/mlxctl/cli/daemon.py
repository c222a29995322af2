"""Daemon commands: serve, and the client commands ps, load, unload, stop, status.

`serve` runs the daemon in this process; the others talk to it over HTTP through
`mlxctl.client` (MLXCTL_HOST, MLXCTL_API_KEY), as Ollama's CLI does.
"""

from __future__ import annotations

import os
import textwrap
import time
from typing import Any

import click

from mlxctl.cli.hosts import all_option, on_every_host
from mlxctl.cli.output import console, print_fields, print_json, print_table
from mlxctl.cli.slots import load_slot, print_slots, unload_slot
from mlxctl.client import DaemonClient, parse_address
from mlxctl.config.file import read_config
from mlxctl.config.source import config_path
from mlxctl.settings import Settings, describe
from mlxctl.units import human_bytes

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _settings_epilog() -> str:
    # \b keeps click from re-wrapping each block.
    blocks = ["Settings (environment variables; `mlxctl settings` shows current values):"]
    for _name, env, default, help_text in describe():
        text = textwrap.fill(help_text, 76, initial_indent="    ", subsequent_indent="    ")
        blocks.append(f"\b\n{env}  [default: {default or '-'}]\n{text}")
    return "\n\n".join(blocks)


@click.command(epilog=_settings_epilog())
@click.option("--host", help="Address to listen on (default: from MLXCTL_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: from MLXCTL_HOST).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(host: str | None, port: int | None, log_level: str) -> None:
    """Run the daemon: one OpenAI-compatible front door for every registered model.

    Models load on first request and unload after MLXCTL_KEEP_ALIVE idle; the
    memory budget and MLXCTL_MAX_LOADED_MODELS decide who is evicted.
    Listens on 127.0.0.1:11500 unless MLXCTL_HOST says otherwise.
    """
    from mlxctl.api.server import serve as run_server

    settings = Settings.from_env()
    read_config(config_path(os.environ, settings.home))  # a bad file: one line, no start
    address = parse_address(settings.host)
    code = run_server(
        settings, host or address.host, address.port if port is None else port, log_level=log_level
    )
    raise SystemExit(code)


@click.command()
@json_option
@all_option
def ps(as_json: bool, every_host: bool) -> None:
    """List loaded models: state, memory, requests in flight, when they unload (with
    --all, every peer's too, as model@host)."""
    with DaemonClient.from_settings() as client:
        models = client.ps()
    if every_host:
        models = on_every_host(models, "model", "loaded")
    if as_json:
        print_json(models)
        return
    _models_table(models)


@click.command()
@click.argument("model")
@click.argument("slot", required=False)
@click.option("--keep-alive", help="How long it stays loaded when idle (5m, 1h, -1 forever).")
@click.option("--force", is_flag=True, help="Slot only: stop an MLX server already on the port.")
@click.option("--preset", help="Run it with this config.yaml preset (docs/config.md).")
@click.option(
    "--hosts",
    help="Shard it across these hosts, rank 0 first (127.0.0.1: this machine; "
    "docs/scale-out.md), until unloaded.",
)
@click.option("--pipeline", is_flag=True, help="With --hosts: split the layers, not each layer.")
@click.option("--backend", "shard_backend", help="With --hosts: ring (default), jaccl, jaccl-ring.")
@click.option("--host-ip", multiple=True, help="With --hosts: HOST=IP the other ranks reach.")
@click.option("--host-memory", multiple=True, help="With --hosts: HOST=SIZE, its budget.")
@json_option
def load(
    model: str,
    slot: str | None,
    keep_alive: str | None,
    force: bool,
    preset: str | None,
    hosts: str | None,
    pipeline: bool,
    shard_backend: str | None,
    host_ip: tuple[str, ...],
    host_memory: tuple[str, ...],
    as_json: bool,
) -> None:
    """Load MODEL now and wait until it is ready.

    With SLOT (a slot port or alias, e.g. 8101 or jerry-l), MODEL is assigned to that
    slot and served on its port until unloaded, surviving daemon restarts.
    With --hosts, MODEL runs across those hosts (mlx.launch + mlx-lm's sharded loading).
    """
    shard = shard_body(hosts, pipeline, shard_backend, host_ip, host_memory)
    if slot is not None:
        if keep_alive is not None or preset is not None or shard is not None:
            raise click.UsageError(
                "--keep-alive, --preset and --hosts apply to on-demand loads, not slots"
            )
        with DaemonClient.from_settings() as client:
            load_slot(client, model, slot, force, as_json)
        return
    if force:
        raise click.UsageError("--force applies to slot loads: mlxctl load MODEL PORT --force")
    started = time.monotonic()
    with DaemonClient.from_settings() as client:
        row = client.load(model, keep_alive, preset, shard)
    if as_json:
        print_json(row)
        return
    seconds = time.monotonic() - started
    idle = row.get("keep_alive_text")
    stays = "until evicted" if idle == "forever" else f"for {idle} when idle"
    with_preset = f" with preset {row['preset']}" if row.get("preset") else ""
    console.print(
        f"Loaded {row.get('model', model)}{with_preset} (pid {row.get('pid')}) in "
        f"{seconds:.1f} s; it stays loaded {stays}"
    )


@click.command()
@click.argument("model")
@json_option
def unload(model: str, as_json: bool) -> None:
    """Unload MODEL now (after its running requests finish).

    A slot port or alias (8101, jerry-l) unloads that slot: its assignment is cleared
    and its worker stopped.
    """
    _unload(model, as_json)


@click.command()
@click.argument("model")
@json_option
def stop(model: str, as_json: bool) -> None:
    """Stop a running model (the same as `unload`; a slot port or alias stops that slot)."""
    _unload(model, as_json)


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Show the daemon: memory budget, used and free, the loaded models, and the slots."""
    client = DaemonClient.from_settings()
    with client:
        data = client.status()
        data["slots"] = client.slots()
    if as_json:
        print_json(data)
        return
    print_fields(
        [
            ("daemon", f"{client.base_url} (pid {data.get('pid')}, v{data.get('version')})"),
            ("uptime", f"{data.get('uptime_s', 0):.0f} s"),
            ("budget", f"{human_bytes(data.get('budget_bytes'))} ({data.get('budget')})"),
            ("used", _used(data)),
            ("free", human_bytes(data.get("free_bytes"))),
            ("measured", human_bytes(data.get("measured_bytes"))),
            ("models", _counts(data)),
        ]
    )
    if data.get("models"):
        console.print()
        _models_table(data["models"])
    console.print()
    print_slots(data["slots"])


def _used(data: dict[str, Any]) -> str:
    used = f"{human_bytes(data.get('used_bytes'))} estimated"
    pinned = data.get("pinned_bytes")
    return f"{used}, {human_bytes(pinned)} of it on slots" if pinned else used


def _counts(data: dict[str, Any]) -> str:
    on_demand = data.get("on_demand_models", data.get("loaded_models"))
    text = f"{on_demand} of {data.get('max_loaded_models')} loaded"
    slots = data.get("slot_models")
    return f"{text} on demand, {slots} on slots" if slots else text


def _unload(model: str, as_json: bool) -> None:
    with DaemonClient.from_settings() as client:
        if client.names_a_slot(model):
            unload_slot(client, model, as_json)
            return
        result = client.unload(model)
    if as_json:
        print_json(result)
    elif result.get("unloaded"):
        console.print(f"Unloaded {result['model']}")
    else:
        console.print(f"{result['model']} was not loaded")


def _models_table(models: list[dict[str, Any]]) -> None:
    if not models:
        console.print("No models loaded.")
        return
    rows = [
        (
            m["model"],
            m["state"],
            m.get("pid"),
            m.get("in_flight"),
            human_bytes(m.get("estimated_bytes")),
            human_bytes((m.get("measured") or {}).get("total_bytes")),
            _slot(m),
            m.get("preset") or "-",
            _until(m),
        )
        for m in models
    ]
    headers = [
        *("NAME", "STATE", "PID", "IN FLIGHT", "ESTIMATED", "MEASURED", "SLOT", "PRESET"),
        "UNTIL",
    ]
    print_table(headers, rows)


def _slot(row: dict[str, Any]) -> str:
    slot = row.get("slot")
    return f"{slot['port']} ({slot['alias']})" if isinstance(slot, dict) else "-"


def _until(row: dict[str, Any]) -> str:
    if row.get("state") not in ("ready", None):
        return str(row.get("state"))
    if row.get("in_flight"):
        return "in use"
    if row.get("pinned"):
        return "pinned"  # a slot's model stays until its slot is unloaded
    expires = row.get("expires_in")
    if expires is None:
        return "forever" if row.get("keep_alive") is None else "now"
    minutes, seconds = divmod(int(expires), 60)
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def shard_body(
    hosts: str | None,
    pipeline: bool,
    backend: str | None,
    ips: tuple[str, ...],
    memory: tuple[str, ...],
) -> dict[str, Any] | None:
    """`load --hosts` as a `shard` object (the daemon validates it like config.yaml's)."""
    if hosts is None:
        if pipeline or backend or ips or memory:
            raise click.UsageError(
                "--pipeline, --backend, --host-ip and --host-memory need --hosts"
            )
        return None
    extra = {"ip": _per_host(ips, "--host-ip"), "memory": _per_host(memory, "--host-memory")}
    entries: list[dict[str, Any]] = []
    for name in (h.strip() for h in hosts.split(",")):
        entry: dict[str, Any] = {"host": name}
        entry |= {key: values[name] for key, values in extra.items() if name in values}
        entries.append(entry)
    shard: dict[str, Any] = {"hosts": entries, "mode": "pipeline" if pipeline else "tensor"}
    return shard | ({"backend": backend} if backend else {})


def _per_host(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    found = {}
    for pair in pairs:
        host, sep, value = pair.partition("=")
        if not sep or not host or not value:
            raise click.UsageError(f"{flag} takes HOST=VALUE, not '{pair}'")
        found[host] = value
    return found
