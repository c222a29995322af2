"""`mlxctl gateway litellm`: a LiteLLM proxy config for the slots and hosts, or a live sync."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from mlxctl.cli.output import console
from mlxctl.client import parse_address
from mlxctl.config.file import read_config
from mlxctl.config.source import config_path
from mlxctl.gateway.hosts import Host
from mlxctl.gateway.litellm import reachable_host, to_yaml
from mlxctl.gateway.litellm_admin import LiteLLMAdmin, sync
from mlxctl.gateway.survey import default_name, gather_hosts, parse_pairs
from mlxctl.gateway.watch import (
    FileSink,
    Gateway,
    ProxySink,
    Sink,
    Watcher,
    describe,
    write_private,
)
from mlxctl.settings import Settings
from mlxctl.slots.table import slot_table


@click.group()
def gateway() -> None:
    """Put a gateway (LiteLLM) in front of mlxctl's slots and models."""


@gateway.command("litellm")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the config here instead of printing it.",
)
@click.option(
    "--include-on-demand",
    is_flag=True,
    help="Also list registered models that are not loaded (a daemon loads them on demand).",
)
@click.option("--slot-host", help="Host LiteLLM reaches the slots at (default: MLXCTL_SLOT_HOST).")
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="NAME=URL",
    help="Another daemon to include (beside config.yaml's peers); repeatable.",
)
@click.option(
    "--peer-key",
    "peer_keys",
    multiple=True,
    metavar="NAME=KEY",
    help="The API key of a peer named by --peer or config.yaml; repeatable.",
)
@click.option("--name", help="This daemon's host name in model@host (default: the hostname).")
@click.option("--no-local", is_flag=True, help="Leave this daemon out (peers only).")
@click.option(
    "--sync",
    "sync_url",
    metavar="URL",
    help="Register the models in the LiteLLM proxy at URL instead (needs its DB).",
)
@click.option(
    "--master-key",
    envvar="LITELLM_MASTER_KEY",
    help="The proxy's master key for --sync [env: LITELLM_MASTER_KEY].",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Keep going: poll every host and apply each change to --sync URL or -o FILE.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between --watch rounds.",
)
@click.option("--rounds", type=click.IntRange(min=1), hidden=True)
def litellm(
    output: Path | None,
    include_on_demand: bool,
    slot_host: str | None,
    peers: tuple[str, ...],
    peer_keys: tuple[str, ...],
    name: str | None,
    no_local: bool,
    sync_url: str | None,
    master_key: str | None,
    watch: bool,
    interval: float,
    rounds: int | None,
) -> None:
    """Write a LiteLLM config: one model per slot alias at its fixed port.

    Swapping the model in a slot needs no LiteLLM reload: the alias keeps its port.
    With peers (config.yaml's `peers:` or --peer), each model loaded on any host is one
    model_name whose deployments LiteLLM balances and fails over between, and each
    host's copy is also `model@host` (docs/scale-out.md).
    """  # fmt: skip
    settings = Settings.from_env()
    if sync_url is not None and not master_key:
        raise click.UsageError("--sync needs --master-key (or LITELLM_MASTER_KEY)")
    if watch and sync_url is None and output is None:
        raise click.UsageError("--watch needs --sync URL or -o FILE to keep current")
    daemon = Host(name or default_name(), parse_address(settings.host).url, settings.api_key)
    config_file = read_config(config_path(os.environ, settings.home))
    hosts = None
    if peers or peer_keys or (config_file is not None and config_file.peers):
        local = None if no_local else daemon
        pairs = parse_pairs(peers, "--peer"), parse_pairs(peer_keys, "--peer-key")
        hosts = gather_hosts(local, config_file, *pairs)
    source = Gateway(
        slot_table(settings),
        slot_host or reachable_host(settings.slot_host),
        daemon,
        include_on_demand=include_on_demand,
        hosts=hosts,
        local=None if no_local else daemon.name,
    )
    if watch:
        with _sink(sync_url, master_key, output) as sink:
            watcher = Watcher(source, sink, interval, say=_say)
            try:
                watcher.run(rounds)
            except KeyboardInterrupt:
                console.print("stopped")
        return
    config, _ = source.config()
    if sync_url is not None:
        with LiteLLMAdmin(sync_url, master_key or "") as admin:
            for action in sync(admin, config["model_list"]):
                _say(describe(action))
        return
    if output is None:
        click.echo(to_yaml(config), nl=False)
        return
    write_private(output, to_yaml(config))
    console.print(f"Wrote {output} ({len(config['model_list'])} models)")
    console.print(f"Start the proxy with: litellm --config {output}")


@contextmanager
def _sink(sync_url: str | None, master_key: str | None, output: Path | None) -> Iterator[Sink]:
    if sync_url is None:
        assert output is not None
        yield FileSink(output)
        return
    with LiteLLMAdmin(sync_url, master_key or "") as admin:
        yield ProxySink(admin)


def _say(line: str) -> None:
    console.print(line, markup=False)
