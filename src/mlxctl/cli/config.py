"""Config commands: `mlxctl config check|show|reload`, and `mlxctl settings`.

`check` validates a file here, without a daemon; `show` and `reload` ask the running
daemon (what it uses, and to take the file as it is now). `settings` prints every
setting with its value and where it came from (default, file or env).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from mlxctl.cli.output import console, print_json, print_table
from mlxctl.client import DaemonClient
from mlxctl.config.file import read_config
from mlxctl.config.layers import sources
from mlxctl.config.source import config_path, load_yaml
from mlxctl.errors import NotFound
from mlxctl.settings import Settings, describe, is_secret

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("config")
def config() -> None:
    """The config file (MLXCTL_HOME/config.yaml): check, show, reload (docs/config.md)."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path | None) -> None:
    """Validate FILE (default: the config file in use) without applying it."""
    path = file or config_path(os.environ, Settings.home_of(os.environ))
    parsed = read_config(path)
    if parsed is None:
        raise NotFound(f"no config file at {path}", hint="see docs/config.md for an example")
    console.print(
        f"{path}: ok ({len(parsed.settings)} settings, {len(parsed.models)} model sections, "
        f"{len(parsed.aliases)} aliases, {len(parsed.presets)} presets)"
    )


@config.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print the daemon's effective config: settings and their sources, aliases, presets,
    and every registered model's options."""
    with DaemonClient.from_settings() as client:
        data = client.config()
    if as_json:
        print_json(data)
        return
    console.print(f"config file: {data['path']}" + ("" if data["file"] else " (none)"))
    rows = [(name, _text(s["value"]), s["source"]) for name, s in data["settings"].items()]
    print_table(["SETTING", "VALUE", "SOURCE"], rows)
    if data["aliases"]:
        console.print()
        print_table(["ALIAS", "MODELS"], [(k, ", ".join(v)) for k, v in data["aliases"].items()])
    if data["presets"]:
        console.print()
        print_table(["PRESET", "SETTINGS"], [(k, _pairs(v)) for k, v in data["presets"].items()])
    if data["models"]:
        console.print()
        print_table(
            ["MODEL", "CONTEXT", "BATCH", "KEEP ALIVE", "PRESET"],
            [
                (slug, o["context"] or "model's", o["max_batch"], o["keep_alive"] or "default",
                 o["preset"] or "-")
                for slug, o in data["models"].items()
            ],
        )  # fmt: skip


@config.command("reload")
@json_option
def reload(as_json: bool) -> None:
    """Make the daemon read the config file now (it also does on change and on SIGHUP)."""
    with DaemonClient.from_settings() as client:
        report = client.reload_config()
    if as_json:
        print_json(report)
        return
    console.print(f"Reloaded {report['path']}")
    for label, key in (
        ("applied settings", "settings"),
        ("restarted (drained first)", "restarted"),
        ("need a daemon restart", "restart_required"),
        ("aliases", "aliases"),
    ):
        if report.get(key):
            console.print(f"  {label}: {', '.join(report[key])}")


@click.command("settings")
@json_option
def settings_cmd(as_json: bool) -> None:
    """Show every setting: its variable, value and source (default, file or env)."""
    environ = os.environ
    loaded = load_yaml(config_path(environ, Settings.home_of(environ)))
    current = Settings.layered(environ, loaded)
    origin = sources(Settings, environ, loaded.settings() if loaded is not None else {})
    rows = []
    for name, env, default, help_text in describe():
        value = getattr(current, name)
        if is_secret(name) and value:
            value = "******** (set; hidden)"
        rows.append((name, env, value, origin[name], default, help_text))
    if as_json:
        print_json({n: {"env": e, "value": _text(v), "source": s} for n, e, v, s, _, _ in rows})
        return
    for _name, env, value, source, default, help_text in rows:
        click.echo(f"{env}={value}  [{source}]\n    {help_text} (default: {default or 'computed'})")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
