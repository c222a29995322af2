"""`mlxctl gateway litellm`: a LiteLLM proxy config for the slots, or a live sync into one."""

from __future__ import annotations

from pathlib import Path

import click

from mlxctl.cli.output import console
from mlxctl.client import DaemonClient, parse_address
from mlxctl.client.catalog import registered_models
from mlxctl.gateway.litellm import build_config, reachable_host, to_yaml
from mlxctl.gateway.litellm_admin import LiteLLMAdmin, sync
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
    help="Also list the daemon's registered models, served through its /v1.",
)
@click.option("--slot-host", help="Host LiteLLM reaches the slots at (default: MLXCTL_SLOT_HOST).")
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
def litellm(
    output: Path | None,
    include_on_demand: bool,
    slot_host: str | None,
    sync_url: str | None,
    master_key: str | None,
) -> None:
    """Write a LiteLLM config: one model per slot alias at its fixed port.

    Swapping the model in a slot needs no LiteLLM reload: the alias keeps its port.
    """  # fmt: skip
    settings = Settings.from_env()
    address = parse_address(settings.host)
    host = slot_host or reachable_host(settings.slot_host)
    on_demand: list[str] = []
    if include_on_demand:
        with DaemonClient.from_settings(settings) as client:
            on_demand = [str(m["id"]) for m in registered_models(client)]
    config = build_config(
        slot_table(settings), host, on_demand, address.url if include_on_demand else None,
        keyed=settings.api_key is not None,
    )  # fmt: skip
    if sync_url is not None:
        if not master_key:
            raise click.UsageError("--sync needs --master-key (or LITELLM_MASTER_KEY)")
        with LiteLLMAdmin(sync_url, master_key) as admin:
            for action in sync(admin, config["model_list"]):
                note = (
                    " (not created by mlxctl: left as it is)" if action.action == "conflict" else ""
                )
                console.print(f"{action.action:9} {action.model_name}{note}", markup=False)
        return
    text = to_yaml(config)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"Wrote {output} ({len(config['model_list'])} models)")
    console.print(f"Start the proxy with: litellm --config {output}")
